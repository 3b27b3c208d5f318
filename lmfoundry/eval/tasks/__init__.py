"""Evaluation tasks. Each loads its data when built (so a bad data folder fails before any model
work) and ``run(lm)`` returns metrics plus per-item details."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmfoundry.eval.config import EvalConfig


@dataclass
class TaskResult:
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


TASK_NAMES = ("bpb", "mmlu", "gsm8k", "humaneval")


def build_task(name: str, options: EvalConfig):
    """The task object for ``name``, with its data loaded and validated."""
    if name == "bpb":
        from lmfoundry.eval.tasks.bpb import BitsPerByteTask as cls
    elif name == "mmlu":
        from lmfoundry.eval.tasks.mmlu import MMLUTask as cls
    elif name == "gsm8k":
        from lmfoundry.eval.tasks.gsm8k import GSM8KTask as cls
    elif name == "humaneval":
        from lmfoundry.eval.tasks.humaneval import HumanEvalTask as cls
    else:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(TASK_NAMES)}")
    return cls(options)
