"""Learning-rate schedules as pure functions of the optimizer step.

A pure function (rather than a stateful ``LRScheduler``) makes exact resume and spike rollback
trivial: the learning rate at step ``s`` depends on ``s`` and the recipe alone, so restoring the
step counter restores the schedule. Warmup is linear from ``lr / warmup_steps`` to ``lr``.

- ``cosine``: warmup, then cosine decay to ``min_lr_ratio * lr`` at the last step.
- ``wsd`` (warmup-stable-decay, MiniCPM / DeepSeek): warmup, constant ``lr``, then a linear decay to
  ``min_lr_ratio * lr`` over the last ``decay_fraction`` of the run. The stable phase lets a run be
  extended or branched into a decay at any point.
- ``constant``: warmup, then ``lr``.
"""

from __future__ import annotations

import math


def lr_at(
    step: int,
    *,
    lr: float,
    total_steps: int,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.1,
    decay_fraction: float = 0.2,
) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of a run of ``total_steps`` steps."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    min_lr = lr * min_lr_ratio
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps - 1)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "wsd":
        # at least one decay step when asked for any: a very short run still ends decayed
        decay_steps = max(1, round(total_steps * decay_fraction)) if decay_fraction > 0 else 0
        decay_start = max(warmup_steps, total_steps - decay_steps)
        if step < decay_start or decay_steps == 0:
            return lr
        progress = min(1.0, (step - decay_start + 1) / max(1, total_steps - decay_start))
        return lr + (min_lr - lr) * progress
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; expected cosine, wsd or constant")
