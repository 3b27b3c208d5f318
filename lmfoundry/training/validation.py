"""Periodic validation: loss and bits-per-byte on the val shards, and greedy samples.

Bits-per-byte divides the loss by the UTF-8 bytes each token stands for, so runs with different
tokenizers compare on one scale (nanochat, The Pile): ``bpb = loss / ln 2 / bytes_per_token``.
Every process evaluates its own slice of the same fixed val windows and the mean is reduced, so the
number does not depend on the number of processes.
"""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from lmfoundry.data.dataset import PretrainDataset


def lm_loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of a ``[B, S+1]`` window batch: all ``S`` predictions of each window.

    Inputs are the first ``S`` tokens, targets the last ``S`` (``shift_labels``: already aligned,
    so the model does not shift them again).
    """
    return model(input_ids=batch[:, :-1], shift_labels=batch[:, 1:]).loss


@torch.no_grad()
def validate(model: torch.nn.Module, val: PretrainDataset, batches: int, micro_steps: int,
             accelerator: Accelerator) -> dict:
    """Mean val loss over ``batches`` fixed global batches (capped at one pass), and its bpb.

    ``val`` is laid out like the training data (``micro_steps`` micro-batches per global batch), so
    the windows evaluated are the same whatever the number of processes.
    """
    was_training = model.training
    model.eval()
    per_batch = val.tokens_per_step // val.seq_len  # windows in one global batch
    batches = max(1, min(batches, val.windows_per_epoch // max(1, per_batch)))
    total = torch.zeros((), device=accelerator.device, dtype=torch.float64)
    for index in range(batches):
        for micro_step in range(micro_steps):
            batch = val.get_batch(index, micro_step).to(accelerator.device)
            total += lm_loss(model, batch).double()
    loss = accelerator.reduce(total / (batches * micro_steps), "mean").item()
    model.train(was_training)
    return {"val_loss": loss, "val_bpb": loss / math.log(2) / val.bytes_per_token, "val_batches": batches}


@torch.no_grad()
def sample(model: torch.nn.Module, tokenizer, prompts: list[str], max_new_tokens: int,
           accelerator: Accelerator) -> list[dict] | None:
    """Greedy continuations of the fixed prompts (None where the model is sharded across ranks)."""
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED) or not prompts:
        return None
    if not accelerator.is_main_process:
        return []
    unwrapped = accelerator.unwrap_model(model)
    was_training = unwrapped.training
    unwrapped.eval()
    samples = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids.to(accelerator.device)
        out = unwrapped.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        samples.append({"prompt": prompt, "text": tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=False)})
    unwrapped.train(was_training)
    return samples
