"""`lmfoundry run`: the whole journey from raw text to a loadable model, one stage after another.

Stages run in order, each reading the previous stage's folder and writing its own under the run
folder (curate → tokenizer → shards → train → eval → model). A stage is complete when its marker
``RUN/.stages/<stage>.json`` exists; the marker is written atomically after the stage's output is
whole, so a rerun skips complete stages and redoes (or resumes, for training and curation) the one
that was interrupted. The marker also keeps the stage's wall time and key numbers for the summary.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.shards.config import TokenizeConfig
from lmfoundry.recipe import dump_recipe, parse_section

logger = logging.getLogger(__name__)

STAGES = ("curate", "tokenizer", "tokenize", "train", "eval", "export")


@dataclass
class RunConfig:
    """The recipe's ``run`` section."""

    output: str = "runs/lmfoundry"
    seed: int = 0
    # Curate the built-in corpus (KJV + Python stdlib) when the data section names no inputs.
    default_corpus: bool = True
    stages: list[str] = field(default_factory=lambda: list(STAGES))

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"recipe field run.stages: unknown stage(s) {unknown}; allowed: {', '.join(STAGES)}")


@dataclass
class TokenizerSection:
    """The recipe's ``tokenizer`` section: arguments of :func:`lmfoundry.tokenization.train_tokenizer`."""

    vocab_size: int = 8192
    extra_special_tokens: list[str] = field(default_factory=list)
    min_frequency: int = 2
    max_bytes: int | None = None


class StageSubmitted(Exception):
    """A stage handed its work to a cluster scheduler (Slurm) and returned before it ran: the run
    stops there, without the stage's marker, and the same command resumes once the jobs finish."""

    def __init__(self, stage: str, logging_dir: str | None) -> None:
        super().__init__(f"stage {stage}: jobs submitted to the cluster (logs: {logging_dir}); "
                         "rerun the same command once they finish")
        self.stage = stage


def _finished(stage: str, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` of a data stage, unless its executor only submitted jobs (then ``StageSubmitted``)."""
    if result.get("submitted"):
        raise StageSubmitted(stage, result.get("logging_dir"))
    return result


@dataclass
class EvalSection:
    """The recipe's ``eval`` section: which tasks ``lmfoundry run`` evaluates the model on.

    ``bpb`` runs on the run's own validation shards; the other tasks read ``data_dir`` (local
    copies in the original formats) or, without it, the Hub datasets.
    """

    tasks: list[str] = field(default_factory=lambda: ["bpb"])
    limit: int | None = None
    data_dir: str | None = None
    batch_size: int = 8


@dataclass
class RunLayout:
    """Where each stage writes, under one run folder: the one spelling of the layout.

    The stage commands (``lmfoundry train``) take their default folders from it, and the model
    card (:mod:`lmfoundry.hub.artifacts`) finds a run's files through it.
    """

    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def curate(self) -> Path:
        return self.root / "curate"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def train_model(self) -> Path:
        """The training stage's own export (the export stage copies it to :attr:`model`)."""
        return self.train / "model"

    @property
    def train_metrics(self) -> Path:
        return self.train / "metrics.jsonl"

    @property
    def curate_stats(self) -> Path:
        return self.curate / "stats.json"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def eval_results(self) -> Path:
        return self.eval / "results.json"

    @property
    def model(self) -> Path:
        return self.root / "model"

    def marker(self, stage: str) -> Path:
        return self.root / ".stages" / f"{stage}.json"


def check_recipe(recipe: dict[str, dict[str, Any]]) -> None:
    """Parse every section the pipeline will use, so a typo fails before hours of curation."""
    from lmfoundry.data.curation import CurateConfig
    from lmfoundry.hub import HubConfig
    from lmfoundry.modeling import FoundryConfig
    from lmfoundry.training.config import TrainConfig

    parse_section(RunConfig, recipe, "run")
    parse_section(TokenizerSection, recipe, "tokenizer")
    parse_section(TokenizeConfig, recipe, "tokenize")
    data = recipe.get("data", {})
    parse_section(CurateConfig, {"data": {**data, "inputs": data.get("inputs") or ["-"]}}, "data").validate()
    train_fields = {"shards": "-", "tokenizer": "-", **recipe.get("train", {})}
    parse_section(TrainConfig, {"train": train_fields}, "train")
    FoundryConfig(**{"vocab_size": 512, **recipe.get("model", {})})
    parse_section(EvalSection, recipe, "eval")
    parse_section(HubConfig, recipe, "hub")


def stage_curate(recipe: dict, run: RunConfig, layout: RunLayout) -> dict[str, Any]:
    from lmfoundry.data.curation import CurateConfig, curate
    from lmfoundry.data.default_corpus import write_default_corpus

    data = dict(recipe.get("data", {}))
    if not data.get("inputs"):
        if not run.default_corpus:
            raise ValueError("recipe section 'data' has no inputs and run.default_corpus is false")
        folders = write_default_corpus(layout.corpus)
        data["inputs"] = [str(folders["books"]), str(folders["code"])]
    config = parse_section(CurateConfig, {"data": data}, "data")
    stats = _finished("curate", curate(config, layout.curate))
    return {
        "documents_read": stats["read"]["documents_out"],
        "documents_kept": stats["output"]["documents"],
        "mb_kept": round(stats["output"]["bytes"] / 1e6, 2),
    }


def stage_tokenizer(recipe: dict, run: RunConfig, layout: RunLayout) -> dict[str, Any]:
    from lmfoundry.tokenization import special_token_ids, train_tokenizer

    section = parse_section(TokenizerSection, recipe, "tokenizer")
    # Hold out exactly the documents the shards' val split will hold, so bpb is measured on text
    # the tokenizer never saw either.
    val = parse_section(TokenizeConfig, recipe, "tokenize")
    shutil.rmtree(layout.tokenizer, ignore_errors=True)  # an unmarked folder is an interrupted one
    tokenizer = train_tokenizer(
        [layout.curate],
        section.vocab_size,
        layout.tokenizer,
        extra_special_tokens=section.extra_special_tokens,
        min_frequency=section.min_frequency,
        max_bytes=section.max_bytes,
        held_out_fraction=val.val_fraction,
        held_out_method=val.val_method,
    )
    report_path = layout.tokenizer / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return {"vocab_size": special_token_ids(tokenizer)["vocab_size"], "bytes_per_token": report.get("bytes_per_token")}


def stage_tokenize(recipe: dict, run: RunConfig, layout: RunLayout) -> dict[str, Any]:
    from lmfoundry.data.shards import tokenize_shards

    config = parse_section(TokenizeConfig, recipe, "tokenize")
    manifest = _finished("tokenize", tokenize_shards(config, [layout.curate], layout.tokenizer, layout.shards))
    return {split: manifest["splits"][split]["tokens"] for split in manifest["splits"]}


def stage_train(recipe: dict, run: RunConfig, layout: RunLayout) -> dict[str, Any]:
    from lmfoundry.training import train

    recipe = {**recipe, "train": {"seed": run.seed, **recipe.get("train", {})}}
    recipe["train"].update(shards=str(layout.shards), tokenizer=str(layout.tokenizer))
    return train(recipe, layout.train)


def stage_eval(recipe: dict, run: RunConfig, layout: RunLayout) -> dict[str, Any]:
    from lmfoundry.eval import evaluate_model
    from lmfoundry.eval.unigram import unigram_bits_per_byte

    section = parse_section(EvalSection, recipe, "eval")
    results = evaluate_model(
        layout.train_model,
        section.tasks,
        data_dir=section.data_dir,
        limit=section.limit,
        output=layout.eval_results,
        batch_size=section.batch_size,
        bpb_data=str(layout.shards),
    )
    summary = {task: metrics for task, metrics in results["results"].items()}
    summary["unigram_baseline"] = {"bits_per_byte": unigram_bits_per_byte(layout.shards)}
    return summary


def stage_export(recipe: dict, run: RunConfig, layout: RunLayout) -> dict[str, Any]:
    from lmfoundry.hub import push_from_recipe, write_model_card

    tmp = layout.model.with_name("model.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(layout.train_model, tmp)
    shutil.rmtree(layout.model, ignore_errors=True)
    tmp.rename(layout.model)
    card = write_model_card(layout.model, run_dir=layout.root)
    url = push_from_recipe(layout.model, recipe)  # only when the recipe's hub section names a repo
    return {"model": str(layout.model), "card": str(card), "pushed_to": url}


STAGE_FUNCTIONS: dict[str, Callable[[dict, RunConfig, RunLayout], dict[str, Any]]] = {
    "curate": stage_curate,
    "tokenizer": stage_tokenizer,
    "tokenize": stage_tokenize,
    "train": stage_train,
    "eval": stage_eval,
    "export": stage_export,
}


def run_pipeline(recipe: dict[str, dict[str, Any]], output: str | Path | None = None) -> dict[str, Any]:
    """Run every stage the recipe asks for, skipping complete ones; return the summary."""
    run = parse_section(RunConfig, recipe, "run")
    layout = RunLayout(Path(output or run.output))
    check_recipe(recipe)
    layout.root.mkdir(parents=True, exist_ok=True)
    if not os.access(layout.root, os.W_OK):
        raise PermissionError(f"run folder {layout.root} is not writable")
    dump_recipe(recipe, layout.recipe)
    summary: dict[str, Any] = {"run": str(layout.root), "stages": {}}
    for stage in STAGES:
        if stage not in run.stages:
            continue
        marker = layout.marker(stage)
        if marker.exists():
            record = json.loads(marker.read_text())
            logger.info("stage %s: complete (%.1fs earlier), skipping", stage, record["seconds"])
            record["skipped"] = True
        else:
            logger.info("stage %s: starting", stage)
            start = time.perf_counter()
            try:
                result = STAGE_FUNCTIONS[stage](recipe, run, layout)
            except StageSubmitted as submitted:
                logger.info("%s", submitted)
                summary["pending"] = {"stage": stage, "message": str(submitted)}
                break
            record = {"seconds": round(time.perf_counter() - start, 1), "result": result, "skipped": False}
            write_json_atomic(marker, {k: v for k, v in record.items() if k != "skipped"})
            logger.info("stage %s: done in %.1fs", stage, record["seconds"])
        summary["stages"][stage] = record
    write_json_atomic(layout.root / "summary.json", summary)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A readable table of what was built, where, and how long each stage took."""
    lines = [f"run folder: {summary['run']}", "", f"{'stage':<10} {'seconds':>8}  result"]
    for stage, record in summary["stages"].items():
        note = " (skipped: already complete)" if record.get("skipped") else ""
        result = json.dumps(record.get("result", {}), default=str)
        if len(result) > 140:
            result = result[:137] + "..."
        lines.append(f"{stage:<10} {record['seconds']:>8.1f}  {result}{note}")
    if "pending" in summary:
        lines += ["", summary["pending"]["message"]]
    return "\n".join(lines)
