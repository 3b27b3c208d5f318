"""Evaluation metrics shipped as `evaluate` modules inside the package.

``evaluate.load("accuracy")`` fetches its script from the Hub; these load by path, so scoring works
offline and the exact metric code travels with lmfoundry.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import evaluate

METRICS_DIR = Path(__file__).parent
NAMES = ("accuracy", "bits_per_byte", "exact_match", "pass_at_k")


@cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """Load one of :data:`NAMES` with ``evaluate.load`` from its folder in this package."""
    if name not in NAMES:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(NAMES)}")
    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)
