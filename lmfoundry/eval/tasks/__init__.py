"""Evaluation tasks. Each loads its data when built (so a bad data folder fails before any model
work) and ``run(lm)`` returns metrics plus per-item details."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TaskOptions:
    """What the command line and ``evaluate_model`` can set; ``None`` means the task's default."""

    data_dir: Path | None = None
    limit: int | None = None
    num_fewshot: int | None = None
    seed: int = 1234
    bpb_data: str | None = None
    num_samples: int = 1
    temperature: float | None = None
    max_new_tokens: int | None = None
    sandbox_timeout: float = 10.0


@dataclass
class TaskResult:
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


TASK_NAMES = ("bpb", "mmlu", "gsm8k", "humaneval")


def build_task(name: str, options: TaskOptions):
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
