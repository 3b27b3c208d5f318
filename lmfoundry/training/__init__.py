"""Pretraining with Accelerate: the loop, checkpoints and exact resume, loss-spike rollback.

``from lmfoundry.training import train`` — ``train(recipe, output_dir, resume=None) -> summary``.
For a pipeline: :func:`plan_auto` / :func:`apply_plan` size ``model: auto`` after curation (before
the tokenizer is trained), :func:`training_budget` gives training its share of a run budget.
"""

from lmfoundry.training.budget import parse_duration, training_budget
from lmfoundry.training.config import TrainConfig
from lmfoundry.training.loop import TrainingDivergedError, train
from lmfoundry.training.sizing import AutoPlan, apply_plan, is_auto, plan_auto

__all__ = ["AutoPlan", "TrainConfig", "TrainingDivergedError", "apply_plan", "is_auto", "parse_duration", "plan_auto",
           "train", "training_budget"]
