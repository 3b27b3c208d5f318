"""Optimizers: AdamW with the usual two parameter groups, or Muon for the hidden matrices.

Weight decay shrinks weights toward zero, which is right for the projection matrices and wrong for
gains and offsets: decaying RMSNorm weights fights the normalisation, decaying biases adds nothing,
and decaying embeddings penalises rare tokens whose rows are updated rarely (GPT-NeoX, OLMo). So
matrices inside the blocks decay; norms, biases and embeddings (and a tied output head) do not.

``muon`` (Keller Jordan 2024; modded-nanogpt, nanochat, Moonlight) orthogonalises the momentum of
each 2-D matrix inside the transformer blocks with a Newton-Schulz iteration (``torch.optim.Muon``)
and leaves embeddings, the output head, norms and biases to AdamW, as those references do. Muon
needs each matrix whole: under DDP every rank holds the full, all-reduced gradient and computes the
same update; under FSDP or DeepSpeed ZeRO a rank holds a shard, on which the orthogonalisation
would be a different (wrong) operation, so that combination is refused.

Every parameter group carries ``base_lr``, its peak learning rate; the loop sets
``lr = base_lr * schedule factor`` on all groups of all optimizers at every step.
"""

from __future__ import annotations

import torch
from torch import nn

from lmfoundry.training.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float, exclude: set[int] | None = None) -> list[dict]:
    """Split trainable parameters into a decayed and a non-decayed group (each parameter once),
    leaving out those whose ``id`` is in ``exclude`` (the ones another optimizer owns)."""
    exclude = exclude or set()
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
        if not param.requires_grad or id(param) in exclude:
            continue
        skip = param.ndim < 2 or name.endswith("bias") or id(param) in embedding_params or id(param) in norm_params
        (no_decay if skip else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def muon_params(model: nn.Module) -> list[nn.Parameter]:
    """The 2-D weight matrices inside the transformer blocks (attention and MLP projections)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = {id(output.weight)} if output is not None else set()
    return [p for name, p in model.named_parameters()
            if p.requires_grad and p.ndim == 2 and ".layers." in f".{name}" and id(p) not in embeddings | head]


def build_optimizers(model: nn.Module, cfg: TrainConfig, distributed_type: str = "NO") -> list[torch.optim.Optimizer]:
    """The optimizer(s) the recipe asks for: ``[AdamW]``, or ``[Muon, AdamW]`` for ``optimizer: muon``.

    ``distributed_type``: accelerate's ``DistributedType`` value; Muon is refused where parameters
    are sharded (FSDP, DeepSpeed), see the module docstring.
    """
    betas, groups, optimizers = (cfg.beta1, cfg.beta2), [], []
    if cfg.optimizer == "muon":
        if str(distributed_type).upper() in ("FSDP", "DEEPSPEED"):
            raise ValueError(f"recipe field train.optimizer: muon needs whole weight matrices, but {distributed_type} "
                             "shards them across processes (Newton-Schulz on a shard is not Muon); use "
                             "optimizer: adamw, or DDP (accelerate launch --multi_gpu)")
        matrices = muon_params(model)
        if not matrices:
            raise ValueError("recipe field train.optimizer: muon found no 2-D matrices inside model.layers")
        muon = torch.optim.Muon(matrices, lr=cfg.muon_lr, momentum=cfg.muon_momentum, nesterov=True,
                                weight_decay=cfg.weight_decay)
        optimizers.append(muon)
        groups = param_groups(model, cfg.weight_decay, exclude={id(p) for p in matrices})
    else:
        groups = param_groups(model, cfg.weight_decay)
    groups = [g for g in groups if g["params"]]
    optimizers.append(torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.eps))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers
