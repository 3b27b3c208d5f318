"""Configuration of the Foundry decoder-only language model.

This file travels to the Hub next to ``modeling_foundry.py``: it imports only transformers (and
torch through it), never lmfoundry, so ``AutoConfig.from_pretrained(..., trust_remote_code=True)``
works where lmfoundry is not installed.

Field names are LlamaConfig's for every concept the two models share, so a Foundry config converts
to a Llama config by copying fields (see ``lmfoundry.modeling.convert``). Options beyond Llama are
training-stability knobs, all off by default: ``qk_norm`` and ``z_loss_coef``. One option changes
how the training loss is computed, not its value: ``fused_lm_head_loss`` (on by default).
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import PreTrainedConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

ROPE_TYPES = ("default", *sorted(ROPE_INIT_FUNCTIONS))


class FoundryConfig(PreTrainedConfig):
    """Shapes and options of a Foundry model; the single source of truth for every tensor shape.

    Args:
        vocab_size: rows of the embedding table and outputs of the LM head.
        hidden_size: width of the residual stream; must be divisible by ``num_attention_heads``.
        intermediate_size: width of the SwiGLU MLP (gate and up projections).
        num_hidden_layers: number of decoder layers.
        num_attention_heads: query heads; head_dim = hidden_size / num_attention_heads (must be even for RoPE).
        num_key_value_heads: key/value heads for grouped-query attention, from 1 (multi-query) to
            ``num_attention_heads`` (multi-head, the default when ``None``); must divide the query heads.
        max_position_embeddings: longest sequence the model is trained for (RoPE scaling reads it).
        rms_norm_eps: epsilon of every RMSNorm.
        rope_theta: RoPE base frequency; stored in ``rope_parameters["rope_theta"]``.
        rope_parameters: transformers' RoPE dict (``rope_type`` one of ``ROPE_TYPES`` plus that type's
            fields, e.g. ``{"rope_type": "linear", "factor": 2.0}``); ``rope_scaling`` is accepted as its old name.
        tie_word_embeddings: share the embedding matrix with the LM head.
        attention_bias: bias on the q/k/v/o projections.
        mlp_bias: bias on the gate/up/down projections.
        attention_dropout: dropout on attention probabilities during training.
        initializer_range: std of the normal init; residual output projections (o_proj, down_proj)
            use ``initializer_range / sqrt(2 * num_hidden_layers)`` (see ``FoundryPreTrainedModel``).
        qk_norm: RMSNorm on each query and key head (over head_dim) before RoPE; bounds attention
            logits, which keeps them from blowing up at high learning rates (OLMo 2, Qwen 3).
        z_loss_coef: weight of the auxiliary loss ``mean(logsumexp(logits)^2)`` (PaLM) that keeps the
            softmax normaliser near 1 and the output logits from drifting; 0 disables it.
        fused_lm_head_loss: in training mode, when ``forward`` gets ``labels`` or ``shift_labels``,
            compute the LM head and the loss together, chunk by chunk, without building the
            ``[tokens, vocab]`` logits (pretraining's largest activation): same loss and gradients,
            a fraction of the memory, faster. ``outputs.logits`` is then None in training mode.
            Default True. Set False when training code reads the logits (a ``Trainer`` with
            ``compute_loss_func`` or a callback that reads ``outputs.logits``, distillation). Eval
            mode always returns logits. A head that is not a plain bias-free ``nn.Linear`` (LoRA,
            quantized, DeepSpeed ZeRO-3) takes the unfused path whatever this says.
        use_cache: return a KV cache from ``forward`` at inference (``generate`` manages its own).
        bos_token_id / eos_token_id / pad_token_id: special token ids (the tokenizer's).
        head_dim / hidden_act: accepted for config.json round trips and Llama-style tools only:
            head_dim is always hidden_size / num_attention_heads, hidden_act always "silu".
    """

    model_type = "foundry"
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["cache", "past_key_values"]
    base_model_tp_plan: ClassVar[dict[str, str]] = {
        "layers.*.self_attn.q_proj": "colwise",
        "layers.*.self_attn.k_proj": "colwise",
        "layers.*.self_attn.v_proj": "colwise",
        "layers.*.self_attn.o_proj": "rowwise",
        "layers.*.mlp.gate_proj": "colwise",
        "layers.*.mlp.up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
    }
    base_model_pp_plan: ClassVar[dict[str, tuple[list[str], list[str]]]] = {
        "embed_tokens": (["input_ids"], ["inputs_embeds"]),
        "layers": (["hidden_states", "attention_mask"], ["hidden_states"]),
        "norm": (["hidden_states"], ["hidden_states"]),
    }

    def __init__(
        self,
        vocab_size: int = 32768,
        hidden_size: int = 768,
        intermediate_size: int = 2048,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        num_key_value_heads: int | None = None,
        max_position_embeddings: int = 2048,
        rms_norm_eps: float = 1e-5,
        rope_theta: float = 10000.0,
        rope_parameters: dict[str, Any] | None = None,
        tie_word_embeddings: bool = False,
        attention_bias: bool = False,
        mlp_bias: bool = False,
        attention_dropout: float = 0.0,
        initializer_range: float = 0.02,
        qk_norm: bool = False,
        z_loss_coef: float = 0.0,
        fused_lm_head_loss: bool = True,
        use_cache: bool = True,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        head_dim: int | None = None,
        hidden_act: str = "silu",
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.attention_bias = attention_bias
        self.mlp_bias = mlp_bias
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range
        self.qk_norm = qk_norm
        self.z_loss_coef = z_loss_coef
        self.fused_lm_head_loss = fused_lm_head_loss
        self.use_cache = use_cache
        if hidden_act != "silu":
            raise ValueError(f"FoundryConfig.hidden_act={hidden_act!r} is not supported; the MLP is SwiGLU: 'silu' only")
        self.hidden_act = hidden_act  # fixed; recorded for tools that read Llama-style configs
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.tie_word_embeddings = tie_word_embeddings
        self._validate_sizes()
        # head_dim is derived, not chosen; it is accepted only so a saved config.json round-trips.
        derived_head_dim = hidden_size // num_attention_heads
        if head_dim is not None and head_dim != derived_head_dim:
            raise ValueError(
                f"FoundryConfig.head_dim={head_dim} does not match hidden_size / num_attention_heads = {derived_head_dim}; "
                "Foundry derives head_dim, leave it unset"
            )
        self.head_dim = derived_head_dim
        if self.head_dim % 2:
            raise ValueError(
                f"FoundryConfig head_dim = hidden_size / num_attention_heads = {self.head_dim} "
                "must be even: RoPE rotates pairs of dimensions"
            )
        self.rope_parameters = _standard_rope_parameters(rope_parameters, kwargs.pop("rope_scaling", None), rope_theta)
        self._validate_rope()
        try:
            super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        except KeyError as err:  # transformers reports a missing per-rope-type key (e.g. "factor") as KeyError
            raise ValueError(f"FoundryConfig.rope_parameters={self.rope_parameters}: {err.args[0]}") from None

    @property
    def rope_theta(self) -> float:
        """RoPE base frequency (LlamaConfig's field name; the value lives in ``rope_parameters``)."""
        return float(self.rope_parameters["rope_theta"])

    def _validate_sizes(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "max_position_embeddings"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"FoundryConfig.{name} must be a positive integer, got {value!r}")
        heads, kv_heads = self.num_attention_heads, self.num_key_value_heads
        if self.hidden_size % heads:
            raise ValueError(
                f"FoundryConfig.hidden_size={self.hidden_size} must be divisible by "
                f"num_attention_heads={heads} (head_dim = hidden_size / num_attention_heads)"
            )
        if kv_heads > heads:
            raise ValueError(
                f"FoundryConfig.num_key_value_heads={kv_heads} must be <= num_attention_heads={heads} "
                "(allowed: 1 for multi-query up to num_attention_heads for multi-head attention)"
            )
        if heads % kv_heads:
            raise ValueError(
                f"FoundryConfig.num_attention_heads={heads} must be divisible by num_key_value_heads={kv_heads} "
                "(each key/value head serves a whole group of query heads)"
            )
        if not self.rms_norm_eps > 0:
            raise ValueError(f"FoundryConfig.rms_norm_eps must be > 0, got {self.rms_norm_eps!r}")
        if not self.initializer_range > 0:
            raise ValueError(f"FoundryConfig.initializer_range must be > 0, got {self.initializer_range!r}")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(f"FoundryConfig.attention_dropout must be in [0, 1), got {self.attention_dropout!r}")
        if not self.z_loss_coef >= 0:
            raise ValueError(f"FoundryConfig.z_loss_coef must be >= 0 (0 disables z-loss), got {self.z_loss_coef!r}")
        if not isinstance(self.fused_lm_head_loss, bool):
            raise ValueError(
                f"FoundryConfig.fused_lm_head_loss must be true or false, got {self.fused_lm_head_loss!r}"
            )

    def _validate_rope(self) -> None:
        rope_type = self.rope_parameters["rope_type"]
        if rope_type not in ROPE_TYPES:
            raise ValueError(
                f"FoundryConfig.rope_parameters['rope_type']={rope_type!r} is not supported; "
                f"allowed: {', '.join(ROPE_TYPES)}"
            )
        if not self.rope_parameters["rope_theta"] > 0:
            raise ValueError(f"FoundryConfig.rope_theta must be > 0, got {self.rope_parameters['rope_theta']!r}")


def _standard_rope_parameters(
    rope_parameters: dict[str, Any] | None, rope_scaling: dict[str, Any] | None, rope_theta: float
) -> dict[str, Any]:
    """transformers' RoPE dict with ``rope_type`` and ``rope_theta`` always present (as LlamaConfig stores it)."""
    params = dict(rope_parameters or rope_scaling or {})
    params.setdefault("rope_type", params.pop("type", "default"))
    params.setdefault("rope_theta", rope_theta)
    return params


__all__ = ["ROPE_TYPES", "FoundryConfig"]
