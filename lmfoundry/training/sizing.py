"""``model: auto``: a model and a batch sized from the corpus and the time budget.

The rule, step by step (each constant is a choice written here, not a law):

1. **Compute.** Measure what this machine does: a few training steps of Foundry models at widths
   64, 128 and 256 give ``F(width)`` FLOP/s (counted as the loop counts them,
   :meth:`FoundryForCausalLM.flops_per_token`), so a shape of that width buys ``C = F * seconds``
   training FLOPs. One rate for all shapes misprices them: small matmuls run at a fraction of the
   rate of larger ones (the README's quick start has this machine's numbers).
2. **Parameters and tokens.** Chinchilla (Hoffmann et al. 2022, "Training Compute-Optimal Large
   Language Models", table 3 / approach 1) trains ``D ≈ 20 N`` tokens for ``N`` parameters at the
   compute optimum. Among candidate shapes we take the one whose ``D = C / flops_per_token`` is
   closest to ``tokens_per_param * N`` (in log space). Using the real per-token FLOPs instead of
   ``6 N`` keeps attention and the head in the bill, which dominate at a few hundred thousand
   parameters.
3. **Data limit.** If ``D`` exceeds ``max_epochs`` passes over the corpus (Muennighoff et al. 2023,
   "Scaling Data-Constrained Language Models": up to ~4 epochs are almost as good as fresh data),
   a smaller-data, larger-model shape is not better: we keep the compute-optimal shape only while
   it fits in ``max_epochs`` and otherwise pick the shape whose ``D`` equals that cap.
4. **Shape** with nanochat's aspect ratio (``d_model ≈ 64 * depth``), widths in steps of 32, heads
   of 64 (32 where the width is not a multiple of 64), MLP of 8/3 d_model rounded to 64 for
   SwiGLU, tied embeddings.
5. **Vocabulary grows with the model** (Tao et al. 2024, "Scaling Laws with Vocabulary: Larger
   Models Deserve Larger Vocabularies"): the power of two nearest to a vocabulary whose embedding
   table is ``vocab_share`` of the non-embedding parameters, within [512, 32768]. At the quickstart's
   budget this gives ~1k tokens, the size that beat 4k in the issue's measurement.
6. **Sequence and batch.** ``seq_len`` the power of two nearest ``2 * d_model`` in [128, 2048];
   ``sqrt(8 D)`` tokens per step (a batch that grows with the run, as the critical batch size
   does; ~500 steps at 2M tokens), at least one sequence.
7. **Optimizer and learning rate.** Muon for the block matrices (it won the adamw-vs-muon row of
   ``benchmarks/time_to_quality.py``), AdamW ``2e-3 * sqrt(192 / d_model)`` for the rest (the tiny
   recipe's tuned 2e-3 at 192, scaled by ``1/sqrt(width)`` as nanochat scales its AdamW rates),
   Muon 0.02; WSD schedule with a 30% decay, 5% warmup.

:func:`plan_auto` does the arithmetic and explains each choice; :func:`apply_plan` writes the plan
into a recipe (fields the recipe sets itself win). The pipeline calls them after curation, when
the corpus size is known and before the tokenizer is trained; the training stage, given
``model: {auto: true}`` and shards that exist, calls :func:`resolve_auto_recipe` (the vocabulary is
then the tokenizer's).
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from lmfoundry.training.budget import parse_duration

TOKENS_PER_PARAM = 20.0  # Chinchilla
MAX_EPOCHS = 4.0  # Muennighoff et al. 2023
VOCAB_SHARE = 0.25  # embedding table / non-embedding parameters
BYTES_PER_TOKEN_GUESS = 3.5  # byte-level BPE of 1-8k tokens on English prose and code, before the tokenizer exists


@dataclass
class AutoPlan:
    """What ``model: auto`` chose, and why (``reasons``, one line each)."""

    vocab_size: int
    depth: int
    hidden_size: int
    num_attention_heads: int
    intermediate_size: int
    seq_len: int
    global_batch_size: int
    micro_batch_size: int
    lr: float
    muon_lr: float
    parameters: int
    tokens: int
    steps: int
    flops_per_s: float
    budget_s: float
    corpus_tokens: int
    reasons: list[str] = field(default_factory=list)

    def model_section(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "intermediate_size": self.intermediate_size,
                "num_hidden_layers": self.depth, "num_attention_heads": self.num_attention_heads,
                "num_key_value_heads": self.num_attention_heads, "max_position_embeddings": self.seq_len,
                "tie_word_embeddings": True, "rope_theta": 10000.0}

    def train_section(self) -> dict[str, Any]:
        return {"seq_len": self.seq_len, "micro_batch_size": self.micro_batch_size,
                "global_batch_size": self.global_batch_size, "lr": self.lr, "muon_lr": self.muon_lr,
                "optimizer": "muon", "schedule": "wsd", "decay_fraction": 0.3, "warmup_fraction": 0.05,
                "min_lr_ratio": 0.0}

    def explain(self) -> str:
        return "\n".join(["model: auto chose", *(f"  - {line}" for line in self.reasons)])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Widths at which model: auto measures this machine's training FLOP/s. Small matmuls run far below a
# CPU's peak, so one measurement at one width would misprice every other shape; beyond the widest
# point the rate is taken as flat (conservative).
PROBE_WIDTHS = (64, 128, 256)


def measure_flops_per_s(hidden_size: int, seconds: float = 0.6, seq_len: int = 256) -> float:
    """Training FLOP/s of this process on an auto-shaped Foundry model of width ``hidden_size``
    (forward, backward, AdamW step; FLOPs counted as the loop counts them)."""
    from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM

    depth, heads = _depth_and_heads(hidden_size)
    config = FoundryConfig(vocab_size=1024, hidden_size=hidden_size, intermediate_size=_mlp(hidden_size),
                           num_hidden_layers=depth, num_attention_heads=heads, max_position_embeddings=seq_len,
                           tie_word_embeddings=True)
    model = FoundryForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = torch.randint(0, 1024, (8, seq_len + 1), generator=torch.Generator().manual_seed(0))

    def step() -> None:
        model(input_ids=batch[:, :-1], shift_labels=batch[:, 1:]).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # allocation and first-call costs
    steps, began = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - began < seconds:
        step()
        steps += 1
    tokens_per_s = steps * batch.shape[0] * seq_len / (time.perf_counter() - began)
    return model.flops_per_token(seq_len) * tokens_per_s


def measure_flops_curve(widths: tuple[int, ...] = PROBE_WIDTHS) -> dict[int, float]:
    """Measured training FLOP/s by model width (a few seconds in all)."""
    return {width: measure_flops_per_s(width) for width in widths}


def flops_at(curve: dict[int, float], hidden: int) -> float:
    """FLOP/s at width ``hidden``: linear in log-width between measured widths, flat beyond them."""
    widths = sorted(curve)
    if hidden <= widths[0]:
        return curve[widths[0]]
    for low, high in itertools.pairwise(widths):
        if hidden <= high:
            t = math.log(hidden / low) / math.log(high / low)
            return curve[low] + t * (curve[high] - curve[low])
    return curve[widths[-1]]


def plan_auto(corpus_bytes: int, budget: str | float, *, flops_per_s: float | dict[int, float] | None = None,
              vocab_size: int | None = None, bytes_per_token: float | None = None,
              tokens_per_param: float = TOKENS_PER_PARAM, max_epochs: float = MAX_EPOCHS,
              train_fraction: float = 0.85) -> AutoPlan:
    """Size a model for ``corpus_bytes`` of text and a training budget (see the module docstring).

    ``flops_per_s``: training FLOP/s, one rate or a curve by model width; measured at
    :data:`PROBE_WIDTHS` when not given. ``vocab_size``: fixed when the tokenizer already
    exists, chosen otherwise. ``bytes_per_token``: of that tokenizer, else a guess.
    ``train_fraction``: the share of the budget the optimizer steps get (the rest: probe, evals,
    checkpoints, export).
    """
    budget_s = parse_duration(budget)
    if corpus_bytes <= 0:
        raise ValueError(f"model: auto needs a corpus, got {corpus_bytes} bytes")
    measured = flops_per_s is None
    if flops_per_s is None:
        curve = measure_flops_curve()
    elif isinstance(flops_per_s, dict):
        curve = flops_per_s
    else:  # one rate for every width
        curve = {PROBE_WIDTHS[0]: float(flops_per_s)}
    seconds = budget_s * train_fraction
    corpus_tokens = int(corpus_bytes / (bytes_per_token or BYTES_PER_TOKEN_GUESS))
    token_cap = max_epochs * corpus_tokens

    candidates = []
    for hidden in range(64, 4097, 32):
        depth, heads = _depth_and_heads(hidden)
        seq_len = _pow2_near(2 * hidden, 128, 2048)
        non_embedding = depth * (4 * hidden * hidden + 3 * hidden * _mlp(hidden)) + hidden  # + final norm
        vocab = vocab_size or _pow2_near(VOCAB_SHARE * non_embedding / hidden, 512, 32768)
        params, flops_per_token = shape_cost(vocab, hidden, depth, seq_len)
        tokens = flops_at(curve, hidden) * seconds / flops_per_token
        candidates.append((depth, hidden, heads, seq_len, vocab, params, tokens))
    # the compute-optimal shape: D / N closest to tokens_per_param
    optimal = min(candidates, key=lambda c: abs(math.log(c[6] / (tokens_per_param * c[5]))))
    chosen, why_size = optimal, (f"Chinchilla: {tokens_per_param:g} tokens per parameter at this compute "
                                 f"(Hoffmann et al. 2022)")
    if optimal[6] > token_cap:  # more tokens than the data can give: a bigger model on fewer, repeated tokens
        fitting = [c for c in candidates if c[6] <= token_cap]
        chosen = fitting[0] if fitting else candidates[-1]
        why_size = (f"data-limited: {optimal[6] / 1e6:.1f}M tokens would be {optimal[6] / corpus_tokens:.1f} "
                    f"epochs; at most {max_epochs:g} (Muennighoff et al. 2023), so the smallest shape within them")
    depth, hidden, heads, seq_len, vocab, params, tokens = chosen
    flops_per_s = flops_at(curve, hidden)
    compute = flops_per_s * seconds
    rates = ", ".join(f"{curve[w] / 1e9:.0f} at width {w}" for w in sorted(curve))
    batch_tokens = max(seq_len, 2 ** round(math.log2(math.sqrt(8 * tokens))))
    global_batch = max(1, batch_tokens // seq_len)
    micro_batch = min(global_batch, 16)
    lr = 2e-3 * math.sqrt(192 / hidden)
    steps = max(1, int(tokens // (global_batch * seq_len)))
    reasons = [
        f"compute: {flops_per_s / 1e9:.1f} GFLOP/s at this width ({'measured here' if measured else 'given'}: "
        f"{rates} GFLOP/s) x {budget_s:.0f} s x {train_fraction:.0%} for steps = {compute:.3g} FLOPs",
        f"size: {params / 1e6:.2f}M parameters for {tokens / 1e6:.1f}M tokens ({tokens / params:.0f} per parameter); "
        f"{why_size}",
        f"corpus: {corpus_bytes / 1e6:.1f} MB ~ {corpus_tokens / 1e6:.1f}M tokens, so {tokens / corpus_tokens:.2f} epochs",
        f"shape: hidden {hidden} -> depth {depth} (64 per layer, nanochat), {heads} heads of {hidden // heads}, "
        f"MLP {_mlp(hidden)}, tied embeddings",
        f"vocabulary: {vocab}" + (" (the tokenizer's)" if vocab_size else
                                  f" (embedding table ~{VOCAB_SHARE:.0%} of the block parameters; Tao et al. 2024)"),
        f"batch: {global_batch} x {seq_len} tokens = {global_batch * seq_len} per step (~sqrt(8 D)), ~{steps} steps",
        f"optimizer: Muon 0.02 for the block matrices, AdamW {lr:.2g} (2e-3 x sqrt(192 / hidden)) for the rest; "
        "WSD, 30% decay, 5% warmup",
    ]
    return AutoPlan(vocab_size=vocab, depth=depth, hidden_size=hidden, num_attention_heads=heads,
                    intermediate_size=_mlp(hidden), seq_len=seq_len, global_batch_size=global_batch,
                    micro_batch_size=micro_batch, lr=lr, muon_lr=0.02, parameters=params, tokens=int(tokens),
                    steps=steps, flops_per_s=flops_per_s, budget_s=budget_s, corpus_tokens=corpus_tokens,
                    reasons=reasons)


def is_auto(recipe: dict[str, Any]) -> bool:
    """Whether the recipe asks for a sized model: ``model: auto``, or ``model: {auto: true}`` (the
    form a recipe file holds, where every section is a mapping)."""
    model = recipe.get("model")
    return model == "auto" or (isinstance(model, dict) and model.get("auto") is True)


def apply_plan(recipe: dict[str, Any], plan: AutoPlan) -> dict[str, Any]:
    """A copy of ``recipe`` with the plan's model section, tokenizer vocabulary and train fields;
    a ``tokenizer.vocab_size`` or train field the recipe sets itself is kept."""
    out = copy.deepcopy(recipe)
    out["model"] = plan.model_section()
    out["tokenizer"] = {"vocab_size": plan.vocab_size, **out.get("tokenizer", {})}
    out["train"] = {**plan.train_section(), **out.get("train", {})}
    return out


def resolve_auto_recipe(recipe: dict[str, Any], train_tokens: int, bytes_per_token: float, vocab_size: int,
                        budget: str | float) -> tuple[dict[str, Any], AutoPlan]:
    """``model: auto`` for a training stage whose tokenizer and shards exist (vocabulary fixed)."""
    plan = plan_auto(int(train_tokens * bytes_per_token), budget, vocab_size=vocab_size,
                     bytes_per_token=bytes_per_token)
    resolved = apply_plan(recipe, plan)
    resolved["tokenizer"] = recipe.get("tokenizer", {})  # the tokenizer exists; the plan cannot change it
    return resolved, plan


def shape_cost(vocab: int, hidden: int, depth: int, seq_len: int) -> tuple[int, float]:
    """Parameters and training FLOPs per token of an auto shape (tied embeddings, full-width KV), by
    the formula of :meth:`FoundryForCausalLM.flops_per_token` without building the model."""
    per_layer = 4 * hidden * hidden + 3 * hidden * _mlp(hidden) + 2 * hidden  # attention, SwiGLU, 2 norms
    params = vocab * hidden + depth * per_layer + hidden
    # the lookup table is free, the tied head's matmul is not: the two cancel in the matmul count
    return params, 6.0 * params + 12.0 * depth * hidden * seq_len


def _depth_and_heads(hidden: int) -> tuple[int, int]:
    """nanochat's aspect ratio (64 per layer), heads of 64 (32 where the width is not a multiple of 64)."""
    return max(1, round(hidden / 64)), hidden // (64 if hidden % 64 == 0 else 32)


def _mlp(hidden: int) -> int:
    """SwiGLU width: 8/3 of the model width (same parameters as a 4x GELU MLP), rounded up to 64."""
    return 64 * math.ceil(8 * hidden / 3 / 64)


def _pow2_near(value: float, low: int, high: int) -> int:
    """The power of two nearest ``value`` in log space, within [low, high]."""
    return int(min(high, max(low, 2 ** round(math.log2(max(value, 1.0))))))
