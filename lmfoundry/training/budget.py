"""Wall-clock budgets: ``train.max_time`` and the share of a pipeline budget that training gets.

A ``max_time`` run does not know its step count in advance. It measures a few probe steps from the
initial state (then restores that state exactly, so the probe leaves no trace in the weights), and
plans ``steps = time left / cost of one step`` where the cost of a step includes its share of the
periodic validation and checkpoints. The plan fixes the warmup and the schedule, so a WSD or cosine
run ends fully decayed at the deadline rather than being cut off at full learning rate. While the lr
is still flat (before the WSD decay, or in the first half of a cosine), the plan is refined from the
measured cost of the steps done so far, which also absorbs the first real eval and checkpoint.
The time of earlier sessions is checkpointed, so a resumed run plans with what is left.
"""

from __future__ import annotations

import math
import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")


def parse_duration(value: str | float | int) -> float:
    """Seconds in ``"90s"``, ``"3m"``, ``"2h"``, ``"1h30m"``, ``"1.5h"`` or a plain number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"expected a duration like 90s, 3m, 2h or 1h30m, got {value!r}") from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive duration, got {value!r}")
    return seconds


def planned_steps(time_left_s: float, step_s: float, *, eval_s: float = 0.0, eval_every: int = 0,
                  checkpoint_s: float = 0.0, checkpoint_every: int = 0, reserve_s: float = 0.0) -> int:
    """Optimizer steps that fit in ``time_left_s`` (at least 1).

    Each step costs ``step_s`` plus its share of a validation every ``eval_every`` steps and of a
    checkpoint every ``checkpoint_every`` steps; ``reserve_s`` is kept for the end of the run (the
    final validation, checkpoint and model export).
    """
    per_step = step_s
    if eval_every > 0:
        per_step += eval_s / eval_every
    if checkpoint_every > 0:
        per_step += checkpoint_s / checkpoint_every
    if per_step <= 0:
        raise ValueError(f"a step must take time, got {per_step} s")
    return max(1, math.floor((time_left_s - reserve_s) / per_step))


def training_budget(budget: str | float, spent_s: float, after_training_s: float = 0.0) -> float:
    """Seconds left for training out of a whole-pipeline ``budget`` (``lmfoundry run --budget 3m``).

    ``spent_s``: what the stages before training took; ``after_training_s``: an estimate of what the
    stages after it need (evaluation, push). Raises when nothing useful is left, naming the numbers.
    """
    total = parse_duration(budget)
    left = total - spent_s - after_training_s
    if left < max(1.0, 0.05 * total):
        raise ValueError(f"run budget {budget}: the stages before training took {spent_s:.0f} s and "
                         f"{after_training_s:.0f} s are kept for the ones after it, leaving {left:.0f} s "
                         f"to train (expected at least 5% of the budget); raise the budget")
    return left
