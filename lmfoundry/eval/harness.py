"""``evaluate_model``: load a model once, run the requested tasks, write results after each one.

Every task loads and checks its data before the model is loaded, so a wrong task name or data
folder fails in seconds; results.json is rewritten after each task, so a failure late in a long run
keeps what was already measured.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from lmfoundry.eval.config import EvalConfig
from lmfoundry.eval.lm import LanguageModel
from lmfoundry.eval.results import save_results
from lmfoundry.eval.tasks import TASK_NAMES, build_task
from lmfoundry.locks import output_lock
from lmfoundry.version import __version__

logger = logging.getLogger(__name__)


def check_tasks(names: list[str]) -> list[str]:
    """The task names, each once, in order; an unknown or missing name is a ``ValueError``."""
    if not names:
        raise ValueError(f"recipe field eval.tasks: no tasks given; available: {', '.join(TASK_NAMES)}")
    unknown = [t for t in names if t not in TASK_NAMES]
    if unknown:
        raise ValueError(f"recipe field eval.tasks: unknown task(s) {', '.join(unknown)}; "
                         f"available: {', '.join(TASK_NAMES)}")
    return list(dict.fromkeys(names))


def evaluate_model(
    model_or_path: str | Path | PreTrainedModel | LanguageModel,
    config: EvalConfig,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a model (folder, Hub id, in-memory model or :class:`LanguageModel`) as ``config`` says.

    Returns the ``results.json`` mapping; with ``output`` it is also written there (with a
    ``results.md`` beside it) after every task. ``results["settings"][task]`` holds every setting
    that changes that task's number (shots, seed, template, budget, stops, the lm-eval task it
    mirrors), ``results["config"]`` the model-wide ones (dtype, device, batch size, versions).
    The folder of ``output`` is locked while it runs (:func:`lmfoundry.locks.output_lock`).
    """
    with output_lock(Path(output).parent, "evaluate_model") if output is not None else nullcontext():
        return _evaluate(model_or_path, config, output)


def _evaluate(model_or_path: str | Path | PreTrainedModel | LanguageModel, config: EvalConfig,
              output: str | Path | None) -> dict[str, Any]:
    names = check_tasks(config.tasks)
    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        raise FileNotFoundError(f"{config.data_dir}: eval data folder not found (recipe field eval.data_dir)")
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        if not os.access(Path(output).parent, os.W_OK):
            raise PermissionError(f"cannot write results to {output}: its folder is not writable")
    built = [build_task(name, config) for name in names]
    lm = (
        model_or_path
        if isinstance(model_or_path, LanguageModel)
        else LanguageModel.load(
            model_or_path,
            config.tokenizer,
            batch_size=config.batch_size,
            device=config.device,
            trust_remote_code=config.trust_remote_code,
            dtype=config.dtype,
        )
    )
    results: dict[str, Any] = {
        "model": str(model_or_path) if isinstance(model_or_path, (str, Path)) else lm.name,
        "lmfoundry_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "results": {},
        "settings": {},
        "details": {},
        "config": {
            "tasks": names,
            "limit": config.limit,
            "num_fewshot": config.num_fewshot,
            "seed": config.seed,
            "batch_size": lm.batch_size,
            "dtype": lm.dtype,
            "device": str(lm.device),
            "max_length": lm.max_length,
            "versions": _versions(),
        },
    }
    for task in built:
        start = time.perf_counter()
        logger.info("eval: %s", task.name)
        outcome = task.run(lm)
        results["results"][task.name] = outcome.metrics
        results["settings"][task.name] = {**outcome.settings, "limit": config.limit}
        results["details"][task.name] = {**outcome.details, "seconds": round(time.perf_counter() - start, 2)}
        logger.info("eval: %s %s", task.name, ", ".join(f"{k}={v:.4f}" for k, v in outcome.metrics.items()))
        if output is not None:
            save_results(results, output)
    return results


def _versions() -> dict[str, str]:
    """Versions of what computes the numbers (torch and transformers change kernels and defaults)."""
    import torch
    import transformers

    return {"lmfoundry": __version__, "torch": torch.__version__, "transformers": transformers.__version__}
