"""A recipe's training stage in the shape :func:`~lmfoundry.training.loop.train` takes: a
:class:`TrainConfig` and the model's fields.

Two rules live here because they need the recipe as written, not a filled-in dataclass (they depend
on which fields the recipe sets itself):

- ``train.seed`` unset means ``run.seed`` (0 when neither is set), so one seed fixes a whole run;
- ``model: auto`` (or ``model: {auto: true}``) sizes the model for the shards and ``train.max_time``,
  and fills the train fields the plan chooses (seq_len, batch, lr, optimizer, schedule) except those
  the recipe sets. The plan is kept in ``OUTPUT/auto_plan.json`` and reused on resume: a re-measured
  machine speed could otherwise pick another shape than the checkpoints hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.shards import read_manifest
from lmfoundry.locks import output_lock
from lmfoundry.recipe import parse_section
from lmfoundry.tokenization import special_token_ids
from lmfoundry.training.config import TrainConfig
from lmfoundry.training.sizing import AutoPlan, apply_plan, is_auto, resolve_auto_recipe

AUTO_PLAN = "auto_plan.json"


def train_sections(recipe: dict[str, Any], output_dir: str | Path) -> tuple[TrainConfig, dict[str, Any]]:
    """``(train config, model fields)`` of ``recipe`` for a run in ``output_dir``."""
    if is_auto(recipe):
        with output_lock(output_dir, "train"):  # the plan file is the run folder's: one writer at a time
            recipe = _resolve_auto(recipe, Path(output_dir))
    body = dict(recipe.get("train") or {})
    if body.get("seed") is None:
        body["seed"] = int((recipe.get("run") or {}).get("seed", 0))
    return parse_section(TrainConfig, {"train": body}, "train"), dict(recipe.get("model") or {})


def saved_plan(output_dir: Path) -> AutoPlan | None:
    """The ``model: auto`` plan a run folder keeps, if its model was sized by one."""
    path = output_dir / AUTO_PLAN
    return AutoPlan(**json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def _resolve_auto(recipe: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """``recipe`` with its model and the plan's train fields, planned once per run folder."""
    cfg = parse_section(TrainConfig, recipe, "train")
    if cfg.max_time is None:
        raise ValueError("recipe section 'model': auto sizes the model for a time budget; set train.max_time "
                         "(e.g. 3m) instead of max_steps/max_tokens")
    plan = saved_plan(output_dir)
    if plan is not None:
        return apply_plan(recipe, plan)
    split = read_manifest(Path(cfg.shards))["splits"]["train"]
    vocab = special_token_ids(AutoTokenizer.from_pretrained(cfg.tokenizer))["vocab_size"]
    resolved, plan = resolve_auto_recipe(recipe, split["tokens"], split["bytes_per_token"], vocab, cfg.max_time)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / AUTO_PLAN, plan.to_dict())
    return resolved


__all__ = ["AUTO_PLAN", "saved_plan", "train_sections"]
