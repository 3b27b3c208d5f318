"""Pretraining with Accelerate: the loop, checkpoints and exact resume, loss-spike rollback.

``from lmfoundry.training import train`` — ``train(recipe, output_dir, resume=None) -> summary``.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "lmfoundry.training.config",
    "TrainingDivergedError": "lmfoundry.training.loop",
    "train": "lmfoundry.training.loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
