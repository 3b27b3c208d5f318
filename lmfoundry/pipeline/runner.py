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
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmfoundry.atomic import replace_folder, write_json_atomic
from lmfoundry.command import recipe_section
from lmfoundry.data.curation import curate
from lmfoundry.data.curation.sources import discover_inputs
from lmfoundry.data.default_corpus import write_default_corpus
from lmfoundry.data.shards import read_manifest, tokenize_shards
from lmfoundry.eval.harness import evaluate_model
from lmfoundry.eval.unigram import unigram_bits_per_byte
from lmfoundry.hub import push_to_hub, write_model_card
from lmfoundry.layout import STAGES, RunLayout
from lmfoundry.locks import folder_lock
from lmfoundry.modeling import FoundryConfig
from lmfoundry.pipeline.config import RunConfig
from lmfoundry.recipe import coerce_fields, dump_recipe, parse_section
from lmfoundry.tokenization.stage import build_tokenizer
from lmfoundry.training.budget import training_budget
from lmfoundry.training.loop import train
from lmfoundry.training.sections import AUTO_PLAN, train_sections
from lmfoundry.training.sizing import is_auto, plan_auto

logger = logging.getLogger(__name__)


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


# Seconds of a run.budget kept for evaluation and export after training.
EVAL_RESERVE_S = 20.0


@dataclass
class Run:
    """What every stage gets: the recipe (sections parsed on demand), the run section, the layout."""

    recipe: dict[str, dict[str, Any]]
    config: RunConfig
    layout: RunLayout
    force_recipe_change: bool = False
    started: float = field(default_factory=time.perf_counter)

    def section(self, name: str) -> Any:
        return recipe_section(self.recipe, name)


def check_recipe(recipe: dict[str, dict[str, Any]]) -> None:
    """Parse every section the pipeline will use, so a typo fails before hours of curation."""
    for name in ("run", "tokenizer", "tokenize", "eval", "hub"):
        recipe_section(recipe, name)
    data = recipe.get("data", {})
    recipe_section({"data": {**data, "inputs": data.get("inputs") or ["-"]}}, "data").validate()
    train_fields = {"shards": "-", "tokenizer": "-", **recipe.get("train", {})}
    recipe_section({"train": train_fields}, "train")
    FoundryConfig(**{"vocab_size": 512, **coerce_fields(FoundryConfig, recipe.get("model", {}), "model")})


def stage_curate(run: Run) -> dict[str, Any]:
    data = dict(run.recipe.get("data", {}))
    if not data.get("inputs"):
        if not run.config.default_corpus:
            raise ValueError("recipe field data.inputs: no inputs, and run.default_corpus is false")
        folders = write_default_corpus(run.layout.corpus)
        data["inputs"] = [str(folders["books"]), str(folders["code"])]
    config = run.section("data")
    config.inputs = data["inputs"]
    stats = _finished("curate", curate(config, run.layout.curate))
    return {
        "documents_read": stats["read"]["documents_out"],
        "documents_kept": stats["output"]["documents"],
        "mb_kept": round(stats["output"]["bytes"] / 1e6, 2),
    }


def stage_tokenizer(run: Run) -> dict[str, Any]:
    if is_auto(run.recipe) and "vocab_size" not in run.recipe.get("tokenizer", {}):
        _plan_auto_vocabulary(run)
    # overwrite: an unmarked tokenizer folder is an interrupted stage's (a new one is built beside it, then swapped)
    split = run.section("tokenize")
    result = build_tokenizer(run.section("tokenizer"), [run.layout.curate], run.layout.tokenizer,
                             held_out_fraction=split.val_fraction, held_out_method=split.val_method, overwrite=True)
    return {"vocab_size": result["vocab_size"], "bytes_per_token": result["bytes_per_token"]}


def stage_tokenize(run: Run) -> dict[str, Any]:
    manifest = _finished("tokenize", tokenize_shards(run.section("tokenize"), [run.layout.curate],
                                                     run.layout.tokenizer, run.layout.shards))
    return {split: manifest["splits"][split]["tokens"] for split in manifest["splits"]}


def _plan_auto_vocabulary(run: Run) -> None:
    """``model: auto``: size the model for the curated text before the tokenizer exists, so the plan
    picks the vocabulary too; the train stage finds the plan in ``RUN/train/auto_plan.json``."""
    stats = json.loads(run.layout.curate_stats.read_text(encoding="utf-8"))
    plan = plan_auto(stats["output"]["bytes"], _training_time(run))
    write_json_atomic(run.layout.train / AUTO_PLAN, plan.to_dict())
    run.recipe.setdefault("tokenizer", {})["vocab_size"] = plan.vocab_size
    logger.info("model: auto chose a %d-token vocabulary for %.1f MB of text", plan.vocab_size,
                stats["output"]["bytes"] / 1e6)


def _training_time(run: Run) -> str | float:
    """train.max_time, or with run.budget what is left of it for training (train.max_time is then set)."""
    if run.config.budget is None:
        return run.recipe.get("train", {}).get("max_time") or "3m"
    left = training_budget(run.config.budget, spent_s=time.perf_counter() - run.started,
                           after_training_s=EVAL_RESERVE_S)
    return round(left, 1)


def stage_train(run: Run) -> dict[str, Any]:
    recipe = {**run.recipe, "train": {**run.recipe.get("train", {}), "shards": str(run.layout.shards),
                                      "tokenizer": str(run.layout.tokenizer)}}
    if run.config.budget is not None:  # the run's budget, less what the data stages took, is training's
        for name in ("max_steps", "max_tokens"):
            recipe["train"].pop(name, None)
        recipe["train"]["max_time"] = _training_time(run)
    config, model = train_sections(recipe, run.layout.train)
    return train(config, run.layout.train, model, force_recipe_change=run.force_recipe_change)


def stage_eval(run: Run) -> dict[str, Any]:
    """The recipe's tasks on the trained model; bpb on the run's val shards, next to a unigram baseline.

    A run without validation text (``tokenize.val_fraction: 0``) is not failed for it: bpb is left
    out, and the summary says why.
    """
    config = run.section("eval")
    config.bpb_data = str(run.layout.shards)
    val = read_manifest(run.layout.shards)["splits"]["val"]
    skipped: dict[str, Any] = {}
    if "bpb" in config.tasks and val["tokens"] == 0:
        config.tasks = [task for task in config.tasks if task != "bpb"]
        skipped["bpb"] = {"skipped": f"{run.layout.shards}: the val split is empty (tokenize.val_fraction 0)"}
        logger.warning("eval: %s", skipped["bpb"]["skipped"])
    summary: dict[str, Any] = dict(skipped)
    if config.tasks:
        summary.update(evaluate_model(run.layout.train_model, config, run.layout.eval_results)["results"])
    if val["tokens"]:
        summary["unigram_baseline"] = {"bits_per_byte": unigram_bits_per_byte(run.layout.shards)}
    summary["val"] = {"tokens": val["tokens"], "documents": val["documents"]}
    return summary


def stage_export(run: Run) -> dict[str, Any]:
    layout = run.layout
    staged = layout.model.with_name("model.tmp")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(layout.train_model, staged)
    replace_folder(staged, layout.model)  # the earlier export stays whole until the new one is
    card = write_model_card(layout.model, run_dir=layout.root)
    hub = run.section("hub")
    url = push_to_hub(layout.model, hub) if hub.repo_id else None  # only when the recipe names a repo
    return {"model": str(layout.model), "card": str(card), "pushed_to": url}


# The folder each stage writes (a RunLayout property), locked while it runs; export replaces RUN/model whole.
STAGE_FOLDERS = {"curate": "curate", "tokenizer": "tokenizer", "tokenize": "shards", "train": "train", "eval": "eval"}
STAGE_FUNCTIONS: dict[str, Callable[[Run], dict[str, Any]]] = {
    "curate": stage_curate,
    "tokenizer": stage_tokenizer,
    "tokenize": stage_tokenize,
    "train": stage_train,
    "eval": stage_eval,
    "export": stage_export,
}


def run_pipeline(recipe: dict[str, dict[str, Any]], *, force_recipe_change: bool = False) -> dict[str, Any]:
    """Run every stage the recipe asks for, skipping complete ones; return the summary.

    ``force_recipe_change``: resume training even though its recipe changed (see ``lmfoundry train``).

    The run folder is locked for the whole run and each stage's folder while the stage runs, so a
    second ``lmfoundry run`` (or a stage command) on the same folders stops at once with one line.
    """
    config = parse_section(RunConfig, recipe, "run")
    layout = RunLayout(Path(config.output))
    check_recipe(recipe)
    if "curate" in config.stages and recipe.get("data", {}).get("inputs") and not layout.marker("curate").exists():
        data = recipe_section(recipe, "data")
        discover_inputs(data.inputs, data.text_field, data.hf_split)  # a missing or empty input: before RUN/ exists
    with folder_lock(layout.root, "lmfoundry run"):
        if not os.access(layout.root, os.W_OK):
            raise PermissionError(f"run folder {layout.root} is not writable")
        dump_recipe(recipe, layout.recipe)
        run = Run(recipe, config, layout, force_recipe_change)
        summary: dict[str, Any] = {"run": str(layout.root), "stages": {}}
        for stage in STAGES:
            if stage not in config.stages:
                continue
            marker = layout.marker(stage)
            if marker.exists():
                record = json.loads(marker.read_text())
                logger.info("stage %s: complete (%.1fs earlier), skipping", stage, record["seconds"])
                record["skipped"] = True
            else:
                logger.info("stage %s: starting", stage)
                start = time.perf_counter()
                folder = STAGE_FOLDERS.get(stage)
                try:
                    with folder_lock(getattr(layout, folder), f"lmfoundry run, stage {stage}") if folder \
                            else nullcontext():
                        result = STAGE_FUNCTIONS[stage](run)
                except StageSubmitted as submitted:
                    logger.info("%s", submitted)
                    summary["pending"] = {"stage": stage, "message": str(submitted)}
                    break
                record = {"seconds": round(time.perf_counter() - start, 1), "result": result, "skipped": False}
                write_json_atomic(marker, {k: v for k, v in record.items() if k != "skipped"})
                logger.info("stage %s: done in %.1fs", stage, record["seconds"])
            summary["stages"][stage] = record
        write_json_atomic(layout.summary, summary)
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
