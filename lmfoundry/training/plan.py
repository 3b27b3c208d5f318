"""What a recipe costs before it runs: parameters, FLOPs, tokens, steps, memory per device, time.

:func:`plan` reads the recipe's ``model`` and ``train`` sections (the same dataclasses training
uses) and estimates, for ``gpus`` devices of kind ``gpu`` under ``sharding``:

- parameters (exact: the model is built on the meta device) and training FLOPs per token
  (``FoundryForCausalLM.flops_per_token``: 6N + 12·L·H·S);
- tokens and optimizer steps (the recipe's ``max_tokens``/``max_steps`` and global batch);
- memory per device: fp32 weights, fp32 gradients and AdamW's two fp32 moments (16 bytes per
  parameter), each divided over the devices as the sharding divides it (DDP: nothing sharded;
  ZeRO-2: gradients and optimizer; FSDP/ZeRO-3: all three); plus activations of one micro-batch,
  with and without activation checkpointing (below);
- wall-clock time at the stated MFU against the device's dense bf16 peak.

Activations, per token of a micro-batch, counted as the tensors autograd keeps for backward in a
Foundry decoder layer with fused (flash) attention: the layer input, the two norm outputs, the
residual after attention, rotated q, k, v and the attention output (6·h + 2·kv), and the MLP's gate,
up, activation and product (4·I); plus the embedding output, the final norm and the fused loss's
hidden-state gradient (4·h). With checkpointing each layer keeps only its input (h) and one layer is
recomputed at a time. Element size: 2 bytes under bf16 autocast, 4 in fp32. The constants are checked
against the heap peak of real training steps on CPU (tests/test_plan.py), within 35%.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from typing import Any

import torch

from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM

# name: (dense bf16 peak FLOP/s, memory in GB), from the vendors' data sheets
GPUS: dict[str, tuple[float, float]] = {
    "h100": (989e12, 80), "h200": (989e12, 141), "b200": (2250e12, 192), "a100": (312e12, 80),
    "a100-40gb": (312e12, 40), "l40s": (362e12, 48), "a10g": (70e12, 24), "l4": (121e12, 24),
    "mi300x": (1307e12, 192),
}
SHARDINGS = ("ddp", "zero2", "zero3", "fsdp")
BYTES_WEIGHT, BYTES_GRAD, BYTES_ADAM = 4, 4, 8  # fp32 master weights, fp32 grads, AdamW exp_avg + exp_avg_sq


@dataclass
class Plan:
    """The estimate; every byte count is per device."""

    parameters: int
    flops_per_token: float
    tokens: int
    tokens_per_step: int
    steps: int
    gpus: int
    gpu: str
    sharding: str
    mfu: float
    micro_batch_size: int
    seq_len: int
    grad_accum_steps: int
    weights_bytes: float
    grads_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    activations_checkpointed_bytes: float
    device_memory_bytes: float
    hours: float

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.grads_bytes + self.optimizer_bytes + self.activations_bytes

    @property
    def total_checkpointed_bytes(self) -> float:
        return self.weights_bytes + self.grads_bytes + self.optimizer_bytes + self.activations_checkpointed_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_bytes": self.total_bytes, "total_checkpointed_bytes": self.total_checkpointed_bytes}


def model_config(recipe: dict) -> FoundryConfig:
    """The recipe's model; the vocabulary from ``model.vocab_size`` or ``tokenizer.vocab_size``."""
    fields = dict(recipe.get("model", {}))
    allowed = set(inspect.signature(FoundryConfig.__init__).parameters) - {"self", "kwargs"}
    allowed |= set(FoundryConfig().to_dict())
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValueError(f"recipe section 'model': unknown field(s) {', '.join(unknown)}")
    if "vocab_size" not in fields and recipe.get("tokenizer", {}).get("vocab_size"):
        fields["vocab_size"] = int(recipe["tokenizer"]["vocab_size"])
    return FoundryConfig(**fields)


def activation_elements_per_token(config: FoundryConfig, checkpointing: bool) -> int:
    """Elements autograd keeps per token of a micro-batch (see the module docstring)."""
    h, layers, inner = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    layer = 6 * h + 2 * kv + 4 * inner
    outside = 4 * h
    if checkpointing:
        return layers * h + layer + outside
    return layers * layer + outside


def plan(recipe: dict, *, gpus: int = 1, gpu: str = "h100", mfu: float = 0.4, sharding: str = "ddp",
         bf16: bool = True) -> Plan:
    """Estimate the recipe's cost on ``gpus`` devices of kind ``gpu`` (see :data:`GPUS`) at ``mfu``.

    ``sharding``: ``ddp`` (replicas), ``zero2`` (gradients + optimizer sharded), ``zero3``/``fsdp``
    (weights too). ``bf16``: activations in bf16 (autocast), else fp32.
    """
    from lmfoundry.training.config import TrainConfig

    if gpu not in GPUS:
        raise ValueError(f"--gpu: expected one of {', '.join(GPUS)}, got {gpu!r}")
    if sharding not in SHARDINGS:
        raise ValueError(f"--sharding: expected one of {', '.join(SHARDINGS)}, got {sharding!r}")
    if gpus < 1 or not 0 < mfu <= 1:
        raise ValueError(f"--gpus must be >= 1 and --mfu in (0, 1], got {gpus} and {mfu}")
    train = {"shards": "-", "tokenizer": "-", **recipe.get("train", {})}
    cfg = TrainConfig(**train)
    config = model_config(recipe)
    with torch.device("meta"):
        model = FoundryForCausalLM(config)
    parameters = model.num_parameters()
    flops_per_token = model.flops_per_token(cfg.seq_len)
    accum = cfg.grad_accum_for(gpus)
    tokens_per_step = gpus * accum * cfg.micro_batch_size * cfg.seq_len
    steps = cfg.total_steps(tokens_per_step)
    tokens = steps * tokens_per_step
    shard_all = sharding in ("zero3", "fsdp")
    shard_state = sharding != "ddp"
    element = 2 if bf16 else 4
    micro_tokens = cfg.micro_batch_size * cfg.seq_len
    peak, memory_gb = GPUS[gpu]
    return Plan(
        parameters=parameters, flops_per_token=flops_per_token, tokens=tokens, tokens_per_step=tokens_per_step,
        steps=steps, gpus=gpus, gpu=gpu, sharding=sharding, mfu=mfu, micro_batch_size=cfg.micro_batch_size,
        seq_len=cfg.seq_len, grad_accum_steps=accum,
        weights_bytes=BYTES_WEIGHT * parameters / (gpus if shard_all else 1),
        grads_bytes=BYTES_GRAD * parameters / (gpus if shard_state else 1),
        optimizer_bytes=BYTES_ADAM * parameters / (gpus if shard_state else 1),
        activations_bytes=float(micro_tokens * activation_elements_per_token(config, False) * element),
        activations_checkpointed_bytes=float(micro_tokens * activation_elements_per_token(config, True) * element),
        device_memory_bytes=memory_gb * 1e9,
        hours=flops_per_token * tokens / (gpus * peak * mfu) / 3600,
    )


def format_plan(p: Plan) -> str:
    """The plan as the lines ``lmfoundry plan`` prints."""
    gb = 1e9

    def fits(total: float) -> str:
        return "fits" if total <= 0.9 * p.device_memory_bytes else "does NOT fit"

    return "\n".join([
        f"parameters          {p.parameters / 1e6:,.1f}M",
        f"FLOPs per token     {p.flops_per_token / 1e9:,.2f} GFLOP (training: forward + backward)",
        f"tokens              {p.tokens / 1e9:,.2f}B in {p.steps:,} steps of {p.tokens_per_step:,} tokens "
        f"({p.gpus} x {p.grad_accum_steps} micro-batches x {p.micro_batch_size} x {p.seq_len})",
        f"memory per device   ({p.gpu}, {p.device_memory_bytes / gb:.0f} GB, {p.sharding} over {p.gpus})",
        f"  weights (fp32)    {p.weights_bytes / gb:8.2f} GB",
        f"  gradients (fp32)  {p.grads_bytes / gb:8.2f} GB",
        f"  AdamW state       {p.optimizer_bytes / gb:8.2f} GB",
        f"  activations       {p.activations_bytes / gb:8.2f} GB  (checkpointing: "
        f"{p.activations_checkpointed_bytes / gb:.2f} GB)",
        f"  total             {p.total_bytes / gb:8.2f} GB {fits(p.total_bytes)}  (checkpointing: "
        f"{p.total_checkpointed_bytes / gb:.2f} GB, {fits(p.total_checkpointed_bytes)})",
        f"time at {100 * p.mfu:.0f}% MFU     {p.hours:,.1f} h on {p.gpus} {p.gpu} "
        f"({p.hours * p.gpus:,.0f} GPU-hours)",
    ])


__all__ = ["GPUS", "SHARDINGS", "Plan", "activation_elements_per_token", "format_plan", "plan"]
