"""What a training session ran on, for the ``kind: "run"`` record of ``metrics.jsonl``.

The model card's hardware and software rows come from this record, so a run folder says what it
was trained on without any tracker. The card is public: nothing here names the machine or the
person (no hostname, username or path), only the device model, the process count, the precision
and library versions.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import accelerate
import torch
import transformers
from accelerate import Accelerator

from lmfoundry.version import __version__


def run_record(accelerator: Accelerator, step: int) -> dict[str, Any]:
    """The record written when a session starts at ``step`` (0: a fresh run, else a resume)."""
    return {
        "kind": "run",
        "step": step,
        "resumed": step > 0,
        "device_type": accelerator.device.type,
        "device_name": device_name(accelerator.device),
        "num_processes": accelerator.num_processes,
        "distributed_type": accelerator.distributed_type.value,
        "mixed_precision": accelerator.mixed_precision,
        "versions": library_versions(),
    }


def device_name(device: torch.device) -> str:
    """The model of the main process's device: the GPU's name, or the CPU's."""
    if device.type == "cpu":
        return cpu_name()
    get_name = getattr(getattr(torch, device.type, None), "get_device_name", None)  # cuda, xpu, ...
    return get_name(device) if get_name is not None else device.type


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "lmfoundry": __version__,
    }
