"""AdamW with the usual two parameter groups.

Weight decay shrinks weights toward zero, which is right for the projection matrices and wrong for
gains and offsets: decaying RMSNorm weights fights the normalisation, decaying biases adds nothing,
and decaying embeddings penalises rare tokens whose rows are updated rarely (GPT-NeoX, OLMo). So
matrices inside the blocks decay; norms, biases and embeddings (and a tied output head) do not.
"""

from __future__ import annotations

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into a decayed and a non-decayed group (each parameter once)."""
    embedding_params = {
        id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding) and m.weight.requires_grad
    }
    norm_params = {
        id(p)
        for m in model.modules()
        if "norm" in type(m).__name__.lower() or isinstance(m, nn.LayerNorm)
        for p in m.parameters(recurse=False)
    }
    decay, no_decay = [], []
    for name, param in model.named_parameters():  # named_parameters de-duplicates tied weights
        if not param.requires_grad:
            continue
        skip = param.ndim < 2 or name.endswith("bias") or id(param) in embedding_params or id(param) in norm_params
        (no_decay if skip else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float, betas: tuple[float, float],
                    eps: float) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (torch picks the multi-tensor implementation on GPU)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)
