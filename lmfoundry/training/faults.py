"""Fault injection, so that crash recovery and spike rollback are tested on the real code paths.

- ``LMFOUNDRY_FAULT_SIGKILL=step:N`` kills the process with SIGKILL as optimizer step N begins;
  ``checkpoint:N`` kills it halfway through writing the checkpoint of step N (state written, marker
  and rename not yet done). SIGKILL cannot be caught: this is a power cut, not a clean shutdown.
- The recipe field ``train.poison_batches: "START-END"`` replaces the tokens of those data steps
  with random ids, which makes the loss jump the way a bad shard or a corrupted batch would.
"""

from __future__ import annotations

import logging
import os
import signal

import torch

logger = logging.getLogger(__name__)
ENV_SIGKILL = "LMFOUNDRY_FAULT_SIGKILL"


def maybe_kill(point: str, step: int) -> None:
    """SIGKILL this process if ``LMFOUNDRY_FAULT_SIGKILL`` names this point (``step`` or ``checkpoint``)."""
    if os.environ.get(ENV_SIGKILL) == f"{point}:{step}":
        logger.warning("fault injection: SIGKILL at %s %d", point, step)
        os.kill(os.getpid(), signal.SIGKILL)


def poison(batch: torch.Tensor, data_step: int, micro_step: int, vocab_size: int) -> torch.Tensor:
    """The batch with every token replaced by a random id, reproducibly for (data_step, micro_step)."""
    generator = torch.Generator().manual_seed(1_000_003 * data_step + micro_step)
    noise = torch.randint(0, vocab_size, batch.shape, generator=generator, dtype=batch.dtype)
    return noise.to(batch.device)
