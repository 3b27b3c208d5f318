"""Pretraining with Accelerate: the loop, checkpoints and exact resume, loss-spike rollback.

``from lmfoundry.training import train`` — ``train(recipe, output_dir, resume=None) -> summary``.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

from lmfoundry.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "lmfoundry.training.config",
    "TrainingDivergedError": "lmfoundry.training.loop",
    "train": "lmfoundry.training.loop",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
