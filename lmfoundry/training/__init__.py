"""Pretraining with Accelerate: the loop, checkpoints and exact resume, loss-spike rollback.

``from lmfoundry.training import train`` — ``train(recipe, output_dir, resume=None) -> summary``.
"""

from lmfoundry.training.config import TrainConfig
from lmfoundry.training.loop import TrainingDivergedError, train

__all__ = ["TrainConfig", "TrainingDivergedError", "train"]
