"""Find the exported model inside a run folder and read the run's artifacts for the model card.

The artifacts belong to other stages (curation stats, training metrics and spike events, eval
results), so every reader here is defensive: a missing or malformed file yields ``None`` (and a
log line) rather than an exception, because a model card with one section saying "not recorded"
is better than no card at all. Only the model folder itself is required.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lmfoundry.layout import RunLayout

logger = logging.getLogger(__name__)


def locate_model_dir(path: str | Path) -> tuple[Path, Path | None]:
    """Resolve a run folder or a model folder to ``(model_dir, run_dir_or_None)``.

    A model folder is one with ``config.json``; a run folder holds it where :class:`RunLayout` puts
    it: ``model/`` (the pipeline's export) or ``train/model/`` (the training stage's export).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder (expected a run folder or a model folder)")
    if (path / "config.json").is_file():
        return path, find_run_dir(path)
    layout = RunLayout(path)
    for candidate in (layout.model, layout.train_model):
        if (candidate / "config.json").is_file():
            return candidate, path
    raise FileNotFoundError(
        f"{path}: no model found: expected config.json in {path}, {layout.model} or {layout.train_model}"
    )


def find_run_dir(model_dir: Path) -> Path | None:
    """The run (or training run) folder a model folder was exported into, if it looks like one.

    A pipeline run has ``RUN/model`` or ``RUN/train/model`` next to another stage's output; a
    standalone training run (``lmfoundry train --output DIR``) has ``DIR/model`` next to ``DIR/metrics.jsonl``.
    """
    parent = model_dir.resolve().parent
    for candidate in (parent.parent, parent):
        layout = RunLayout(candidate)
        if any(p.exists() for p in (layout.train_metrics, layout.eval_results, layout.curate_stats)):
            return candidate
    if (parent / "metrics.jsonl").is_file():
        return parent
    return None


@dataclass
class RunArtifacts:
    """Everything the model card can say about how a model was made; ``None`` where not recorded.

    The values are as the run recorded them, local paths included (``run_dir`` is where they were
    read from); the card makes them public (:mod:`lmfoundry.hub.redact`).
    """

    run_dir: Path | None = None
    recipe: dict[str, Any] | None = None
    curation_stats: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] | None = None
    spikes: list[dict[str, Any]] | None = None
    eval_results: dict[str, Any] | None = None
    loss_curve: Path | None = None

    @classmethod
    def read(cls, run_dir: Path | None) -> RunArtifacts:
        if run_dir is None:
            return cls()
        run_dir = Path(run_dir)
        layout = RunLayout(run_dir)
        # A pipeline run keeps training in train/; a standalone training run *is* the train folder.
        train_dir = layout.train if layout.train.is_dir() else run_dir
        # the run's recipe, with the model and train sections as training filled them in (model: auto sized)
        recipe = {**_read_recipe(layout.recipe), **_read_recipe(train_dir / "recipe.yaml")}
        loss_curve = train_dir / "loss_curve.png"
        return cls(
            run_dir=run_dir,
            recipe=recipe or None,
            curation_stats=_read_json(layout.curate_stats),
            metrics=_read_jsonl(train_dir / "metrics.jsonl"),
            spikes=_read_jsonl(train_dir / "spikes.jsonl"),
            eval_results=_read_json(layout.eval_results),
            loss_curve=loss_curve if loss_curve.is_file() else None,
        )


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        logger.warning("ignoring %s for the model card: %s", path, err)
        return None
    return data if isinstance(data, dict) else None


def _read_recipe(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        logger.warning("ignoring %s for the model card: %s", path, err)
        return {}
    return recipe if isinstance(recipe, dict) else {}


def _read_jsonl(path: Path) -> list[dict[str, Any]] | None:
    """Rows of a JSON-lines log; a torn last line (a run killed mid-write) is skipped."""
    if not path.is_file():
        return None
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        logger.warning("ignoring %s for the model card: %s", path, err)
        return None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d: not JSON, skipped for the model card", path, number)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
