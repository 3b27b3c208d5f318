"""Loss-spike detection over a rolling window of the loss and the gradient norm.

A step is a spike when its loss or gradient norm

- is NaN or infinite, or
- lies more than ``zscore`` (loss) or ``grad_zscore`` (gradient norm) standard deviations above the
  mean of the last ``window`` accepted steps (OLMo-core uses 6σ over 128 steps), once
  ``min_history`` steps are known, or
- early in training, before a z-score means anything: its loss exceeds ``ratio`` times the median
  loss of the steps seen so far.

During learning-rate warmup only non-finite values count: while the lr ramps up the gradient norm
climbs and jumps by design (seen here: 5x the running mean at step 27 of a 30-step warmup with a
loss still falling), so z-scores against that ramp are false alarms that roll back healthy runs.

The gradient norm has its own threshold because it is far noisier than the loss at small batch
sizes (a 256-token batch moves it by 2x from step to step); ``grad_zscore=0`` turns that check off.

Only upward moves count. The standard deviation is floored at a fraction of the mean (1% for the
loss, 10% for the gradient norm, which wanders far more from step to step) so that a quiet stretch
does not turn ordinary noise into a 6σ event. The detector sees only values already reduced
over all processes, so every rank reaches the same verdict; spike steps are never recorded, so one
spike does not raise the bar for the next.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class SpikeSettings:
    """Everything the loop needs to detect a spike and recover from it, resolved for one run.

    Built by :meth:`lmfoundry.training.config.TrainConfig.spike_settings` from the recipe's
    ``spike_*`` fields, with the run-length-dependent defaults filled in.
    """

    enabled: bool = True
    window: int = 128  # steps of history for the z-scores (OLMo-core: 128)
    min_history: int = 16  # accepted steps before a z-score counts
    zscore: float = 6.0  # loss threshold, in standard deviations
    grad_zscore: float = 6.0  # gradient-norm threshold; 0 turns that check off
    ratio: float = 3.0  # early guard: loss above ratio x median of the steps seen
    clean_after: int = 1  # steps past a restore point without a spike before it counts as clean
    skip_extra: int = 1  # batches skipped past the spike itself
    lr_factor: float = 0.5  # after a rollback the lr is multiplied by this ...
    lr_steps: int = 0  # ... for this many steps
    max_rollbacks: int = 5  # more than this many rollbacks stop the run
    snapshot_every: int = 0  # steps between in-memory restore points (0: none; disk checkpoints only)


@dataclass(frozen=True)
class Verdict:
    """What the detector concluded about one step."""

    is_spike: bool
    reason: str = ""  # "non-finite loss", "loss z-score", "grad_norm z-score", "loss ratio"
    zscore: float | None = None  # of the metric that triggered (or of the loss when none did)


class SpikeDetector:
    def __init__(self, settings: SpikeSettings | None = None):
        settings = settings or SpikeSettings()
        self.window, self.min_history, self.ratio = settings.window, settings.min_history, settings.ratio
        self.threshold, self.grad_threshold = settings.zscore, settings.grad_zscore
        self.losses: deque[float] = deque(maxlen=self.window)
        self.grad_norms: deque[float] = deque(maxlen=self.window)

    def check(self, loss: float, grad_norm: float | None, warming_up: bool = False) -> Verdict:
        """Judge a step without recording it (``grad_norm`` None: not known, e.g. under DeepSpeed).

        ``warming_up``: the lr is still ramping; only NaN/Inf count as spikes.
        """
        for name, value in (("loss", loss), ("grad_norm", grad_norm)):
            if value is not None and not math.isfinite(value):
                return Verdict(True, f"non-finite {name}")
        if warming_up:
            return Verdict(False)
        loss_z = self._zscore(loss, self.losses, 0.01)
        if loss_z is not None and loss_z > self.threshold:
            return Verdict(True, "loss z-score", loss_z)
        grad_z = None if grad_norm is None or not self.grad_threshold else \
            self._zscore(grad_norm, self.grad_norms, 0.1)
        if grad_z is not None and grad_z > self.grad_threshold:
            return Verdict(True, "grad_norm z-score", grad_z)
        if loss_z is None and self.losses and loss > self.ratio * statistics.median(self.losses):
            return Verdict(True, "loss ratio")
        return Verdict(False, zscore=loss_z)

    def record(self, loss: float, grad_norm: float | None) -> None:
        """Add an accepted step to the window."""
        self.losses.append(float(loss))
        if grad_norm is not None:
            self.grad_norms.append(float(grad_norm))

    def _zscore(self, value: float, history: deque[float], std_floor: float) -> float | None:
        if len(history) < self.min_history:
            return None
        # plain float arithmetic: statistics.pstdev is exact (fractions), too slow to run every step
        mean = math.fsum(history) / len(history)
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in history) / len(history))
        std = max(std, std_floor * abs(mean), 1e-12)
        return (value - mean) / std

    def state_dict(self) -> dict:
        return {"losses": list(self.losses), "grad_norms": list(self.grad_norms)}

    def load_state_dict(self, state: dict) -> None:
        self.losses = deque(state["losses"], maxlen=self.window)
        self.grad_norms = deque(state["grad_norms"], maxlen=self.window)
