"""Fault injection, so that crash recovery and spike rollback are tested on the real code paths.

- ``LMFOUNDRY_FAULT_SIGKILL=step:N`` kills the process with SIGKILL as optimizer step N begins;
  ``checkpoint:N`` kills it halfway through writing the checkpoint of step N (state written, marker
  and rename not yet done). SIGKILL cannot be caught: this is a power cut, not a clean shutdown.
- The recipe field ``train.poison_batches: "START-END"`` trains those data steps with the learning
  rate multiplied by ``train.poison_lr_factor``: a destructive update, the way a bad batch meeting
  a fragile model state blows up a real run (PaLM). The loss spikes on the following step, which
  is what the spike detector has to catch and roll back.
- ``LMFOUNDRY_FAULT_SLOW_STEP=SECONDS`` adds SECONDS to every optimizer step after the probe of a
  ``max_time`` run: a machine that another job slows down once the plan is made.
"""

from __future__ import annotations

import logging
import os
import signal
import time

logger = logging.getLogger(__name__)
ENV_SIGKILL = "LMFOUNDRY_FAULT_SIGKILL"
ENV_SLOW_STEP = "LMFOUNDRY_FAULT_SLOW_STEP"


def maybe_kill(point: str, step: int) -> None:
    """SIGKILL this process if ``LMFOUNDRY_FAULT_SIGKILL`` names this point (``step`` or ``checkpoint``)."""
    if os.environ.get(ENV_SIGKILL) == f"{point}:{step}":
        logger.warning("fault injection: SIGKILL at %s %d", point, step)
        os.kill(os.getpid(), signal.SIGKILL)


def maybe_slow() -> None:
    """Stall this step by ``LMFOUNDRY_FAULT_SLOW_STEP`` seconds, if set."""
    delay = float(os.environ.get(ENV_SLOW_STEP) or 0)
    if delay > 0:
        time.sleep(delay)
