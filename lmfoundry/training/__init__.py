"""Pretraining with Accelerate: the loop, checkpoints and exact resume, loss-spike rollback.

``from lmfoundry.training import TrainConfig, train`` — ``train(config, output_dir, model=None, resume=None)
-> summary``; :func:`train_sections` turns a recipe's ``train`` and ``model`` sections into those arguments.
For a pipeline: :func:`plan_auto` / :func:`apply_plan` size ``model: auto`` after curation (before
the tokenizer is trained), :func:`training_budget` gives training its share of a run budget.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

from lmfoundry.lazy import lazy_exports

_EXPORTS = {
    "AutoPlan": "lmfoundry.training.sizing",
    "TrainConfig": "lmfoundry.training.config",
    "TrainingDivergedError": "lmfoundry.training.loop",
    "apply_plan": "lmfoundry.training.sizing",
    "is_auto": "lmfoundry.training.sizing",
    "parse_duration": "lmfoundry.training.budget",
    "plan_auto": "lmfoundry.training.sizing",
    "train": "lmfoundry.training.loop",
    "train_sections": "lmfoundry.training.sections",
    "training_budget": "lmfoundry.training.budget",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
