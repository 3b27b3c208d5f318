"""Foundry: a Llama-layout decoder-only language model with optional stability features.

embedding -> N x [RMSNorm -> attention -> residual, RMSNorm -> SwiGLU MLP -> residual] -> RMSNorm -> LM head

Modelled on transformers' ``models/llama/modeling_llama.py`` and kept parameter-name compatible with
it (``model.layers.N.self_attn.q_proj`` ...), so a Foundry state dict loads with ``strict=True`` into
``LlamaForCausalLM`` and gives the same logits. Beyond Llama: QK-norm and z-loss (both off by
default) and depth-scaled init of the residual output projections.

The file reads top to bottom as Llama's does: the building blocks (norm, rotary embedding, MLP,
attention, decoder layer), then the models (``FoundryPreTrainedModel``, ``FoundryModel``,
``FoundryForCausalLM``). Two sections follow them: ``FusedLMHeadLoss``, the chunked LM head + loss
that training mode uses (``FoundryConfig.fused_lm_head_loss``), and the transformers-version shims.

This file travels to the Hub next to ``configuration_foundry.py``: it imports only torch,
transformers and that file, so ``trust_remote_code=True`` loading works without lmfoundry. It also
has to run under other transformers 5.x releases (5.0 and later), which differ in a few names (the
cache argument is ``cache`` in recent releases and ``past_key_values`` before;
``create_causal_mask`` took ``cache_position``); the shims at the end resolve those once at import.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel

from .configuration_foundry import FoundryConfig


@dataclass
class FoundryCausalLMOutputWithPast(CausalLMOutputWithPast):
    """``CausalLMOutputWithPast`` plus the z-loss term on its own (already included in ``loss``)."""

    z_loss: torch.Tensor | None = None


# --- building blocks ------------------------------------------------------------------------------


class FoundryRMSNorm(nn.Module):
    """RMSNorm computed in float32 (as Llama's), scaled by a learned per-channel weight.

    Without autograd (generation, evaluation) it runs torch's fused ``F.rms_norm``: one kernel
    instead of six small ops, about a third faster per call on the tiny tensors of a decode step.
    Under autograd it keeps the composite form, whose backward measured faster than the fused
    kernel's on CPU. Both agree to float32 rounding (tested).
    """

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        if _HAS_FUSED_RMS_NORM and input_dtype == self.weight.dtype and not (
            torch.is_grad_enabled() and (hidden_states.requires_grad or self.weight.requires_grad)
        ):
            return F.rms_norm(hidden_states, self.weight.shape, self.weight, self.variance_epsilon)
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class FoundryRotaryEmbedding(nn.Module):
    """RoPE cos/sin tables. The class name must contain ``RotaryEmbedding`` and keep ``original_inv_freq``
    and ``rope_type``: ``from_pretrained`` builds on the meta device and recomputes these non-persistent
    buffers only for modules that look like this."""

    inv_freq: torch.Tensor

    def __init__(self, config: FoundryConfig) -> None:
        super().__init__()
        self.max_seq_len_cached = config.max_position_embeddings
        self.original_max_seq_len = config.max_position_embeddings
        self.config = config
        self.rope_type = config.rope_parameters["rope_type"]
        rope_init_fn: Callable = self.compute_default_rope_parameters
        if self.rope_type != "default":
            rope_init_fn = ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = rope_init_fn(config)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.register_buffer("original_inv_freq", inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(config: FoundryConfig, **kwargs: Any) -> tuple[torch.Tensor, float]:
        """Inverse frequencies of the original RoPE: theta^(-2i/d) for i < d/2."""
        base = config.rope_parameters["rope_theta"]
        dim = config.head_dim
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        return inv_freq, 1.0

    @torch.no_grad()
    @dynamic_rope_update  # grows/shrinks the table for the "dynamic" and "longrope" rope types
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, signed sin) per position, each [batch, seq, head_dim]. The first half of ``sin`` is
        negated (Llama's is not), so rotating needs a roll instead of ``rotate_half``'s
        slice-negate-concatenate: see ``apply_rotary_pos_emb``."""
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((-freqs, freqs), dim=-1)  # cos is even, so only sin sees the sign
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def apply_rotary_pos_emb(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate queries and keys of shape [batch, heads, seq, head_dim] by their positions.

    Llama's rotation ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = (-x2, x1)`` equals
    ``x * cos + roll(x, d/2) * signed_sin`` when sin's first half is negated: two kernels
    (roll, addcmul) after the product instead of five, in forward and backward alike.
    """
    cos, signed_sin = cos.unsqueeze(1), signed_sin.unsqueeze(1)
    half = q.shape[-1] // 2
    return (
        torch.addcmul(q * cos, q.roll(half, dims=-1), signed_sin),
        torch.addcmul(k * cos, k.roll(half, dims=-1), signed_sin),
    )


class FoundryResidualLinear(nn.Linear):
    """A projection whose output is added to the residual stream (``o_proj``, ``down_proj``).

    A plain ``nn.Linear`` in every respect but its init (see ``FoundryPreTrainedModel``); the class
    marks it because transformers initializes parameters module by module, where a name is not known.
    """


class FoundryMLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: FoundryConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = FoundryResidualLinear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[batch, kv_heads, seq, head_dim] -> [batch, kv_heads * n_rep, seq, head_dim] (GQA for eager)."""
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention in plain torch; also the only one that returns attention probabilities."""
    key_states = repeat_kv(key, module.num_key_value_groups)
    value_states = repeat_kv(value, module.num_key_value_groups)
    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value_states)
    return attn_output.transpose(1, 2).contiguous(), attn_weights


class FoundryAttention(nn.Module):
    """Grouped-query attention with RoPE (and optional QK-norm), dispatched through transformers'
    attention interface so ``attn_implementation`` selects eager, sdpa, flash-attention or flex."""

    def __init__(self, config: FoundryConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        q_out = config.num_attention_heads * self.head_dim
        kv_out = config.num_key_value_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, q_out, bias=config.attention_bias)
        self.k_proj = nn.Linear(config.hidden_size, kv_out, bias=config.attention_bias)
        self.v_proj = nn.Linear(config.hidden_size, kv_out, bias=config.attention_bias)
        self.o_proj = FoundryResidualLinear(q_out, config.hidden_size, bias=config.attention_bias)
        if config.qk_norm:
            self.q_norm = FoundryRMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = FoundryRMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def _attention_interface(self) -> Callable:
        """The attention kernel registered under ``config._attn_implementation``.

        transformers allows ``set_attn_implementation`` only on models whose source contains the
        literal lookup it expects: ``ALL_ATTENTION_FUNCTIONS.get_interface(`` in recent releases,
        ``ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]`` in early 5.x (which lack
        ``get_interface``). Keep both spelled exactly like this.
        """
        if hasattr(ALL_ATTENTION_FUNCTIONS, "get_interface"):
            return ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        if self.config._attn_implementation in (None, "eager"):
            return eager_attention_forward
        return ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: Any,
        cache: Cache | None = None,
        cache_position: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query_states = self.q_proj(hidden_states).view(hidden_shape)
        key_states = self.k_proj(hidden_states).view(hidden_shape)
        if self.config.qk_norm:
            query_states = self.q_norm(query_states)
            key_states = self.k_norm(key_states)
        query_states = query_states.transpose(1, 2)
        key_states = key_states.transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
        if cache is not None:
            # The dict is what older 5.x static caches read; newer caches track positions themselves.
            key_states, value_states = cache.update(
                key_states, value_states, self.layer_idx, {"sin": sin, "cos": cos, "cache_position": cache_position}
            )

        attention_interface = self._attention_interface()
        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output), attn_weights


class FoundryDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)). FSDP wraps the model by this class."""

    def __init__(self, config: FoundryConfig, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = FoundryAttention(config, layer_idx)
        self.mlp = FoundryMLP(config)
        self.input_layernorm = FoundryRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = FoundryRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: Any = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: Cache | None = None,
        cache_position: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        residual = hidden_states
        attn_output, attn_weights = self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            cache=cache,
            cache_position=cache_position,
            **kwargs,
        )
        hidden_states = residual + attn_output
        hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states, attn_weights


# --- models ---------------------------------------------------------------------------------------


class FoundryPreTrainedModel(PreTrainedModel):
    """Shared loading/saving/init behaviour.

    Init: every Linear and the embedding ~ N(0, initializer_range); the two projections that write
    into the residual stream (``o_proj``, ``down_proj``) ~ N(0, initializer_range / sqrt(2 * num_layers))
    as in GPT-2 and OLMo: the residual stream is a sum of 2 * num_layers such outputs, so scaling them
    keeps its variance at init independent of depth. Norm weights start at 1, biases at 0.
    """

    config_class = FoundryConfig
    config: FoundryConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["FoundryDecoderLayer"]
    _skip_keys_device_placement: ClassVar[list[str]] = ["past_key_values", "cache"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _can_compile_fullgraph = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, FoundryResidualLinear):
            residual_std = self.config.initializer_range / math.sqrt(2 * self.config.num_hidden_layers)
            init.normal_(module.weight, mean=0.0, std=residual_std)

    def _return_dict(self, return_dict: bool | None) -> bool:
        return self.config.return_dict if return_dict is None else return_dict

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        """Also record ``AutoModel`` in config.json's ``auto_map`` (transformers writes only the saved
        class's entry), so both Auto classes load the folder with ``trust_remote_code=True``."""
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)


class FoundryModel(FoundryPreTrainedModel):
    """The decoder stack without the LM head; returns the final normed hidden states."""

    def __init__(self, config: FoundryConfig) -> None:
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            [FoundryDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = FoundryRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = FoundryRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        past_key_values: Cache | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("FoundryModel.forward needs exactly one of input_ids or inputs_embeds")
        cache = cache if cache is not None else past_key_values  # `past_key_values`: name before 5.x renamed it
        kwargs.pop("cache_position", None)  # recomputed below from the cache, the one source of positions
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if self.gradient_checkpointing and self.training:
            use_cache, cache = False, None  # recomputation in backward would write the cache twice
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        output_attentions = bool(output_attentions or getattr(self.config, "output_attentions", False))

        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past_seen_tokens = cache.get_seq_length() if cache is not None else 0
        cache_position = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen_tokens
        if position_ids is None:
            position_ids = cache_position.unsqueeze(0)

        causal_mask = _causal_mask(self.config, inputs_embeds, attention_mask, cache, position_ids, cache_position)
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)

        all_hidden_states: tuple[torch.Tensor, ...] | None = () if output_hidden_states else None
        all_attentions: tuple[torch.Tensor, ...] | None = () if output_attentions else None
        for decoder_layer in self.layers:
            if all_hidden_states is not None:
                all_hidden_states += (hidden_states,)
            hidden_states, attn_weights = decoder_layer(
                hidden_states,
                attention_mask=causal_mask,
                position_embeddings=position_embeddings,
                cache=cache,
                cache_position=cache_position,
                **kwargs,
            )
            if all_attentions is not None:
                all_attentions += (attn_weights,)
        hidden_states = self.norm(hidden_states)
        if all_hidden_states is not None:
            all_hidden_states += (hidden_states,)
        output = _with_cache(
            BaseModelOutputWithPast,
            cache if use_cache else None,
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


class FoundryForCausalLM(FoundryPreTrainedModel, GenerationMixin):
    """Foundry with its LM head: next-token logits, the training loss, and ``generate``."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.embed_tokens.weight"}
    _tp_plan: ClassVar[dict[str, str]] = {"lm_head": "colwise_gather_output"}
    _pp_plan: ClassVar[dict[str, tuple[list[str], list[str]]]] = {"lm_head": (["hidden_states"], ["logits"])}

    def __init__(self, config: FoundryConfig) -> None:
        super().__init__(config)
        self.model = FoundryModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        return_dict: bool | None = None,
        shift_labels: torch.LongTensor | None = None,
        **kwargs: Any,
    ) -> FoundryCausalLMOutputWithPast:
        """Logits for every (or the last ``logits_to_keep``) position; with ``labels``, the loss.

        loss = mean next-token cross-entropy over labels != -100 (labels are shifted here, as in
        Llama) + ``z_loss_coef`` * mean(logsumexp(logits)^2) over the same positions. With
        ``num_items_in_batch`` (gradient accumulation) both are summed and divided by it instead.
        ``shift_labels`` (transformers' name) gives targets already aligned with the positions, so a
        pretraining window of S+1 tokens trains all S predictions: inputs ``w[:, :-1]``, targets
        ``w[:, 1:]``.

        In training mode with targets, and with ``config.fused_lm_head_loss`` (the default), the LM
        head and the loss are computed together chunk by chunk (``fused_lm_loss``): the
        ``[tokens, vocab]`` logits are never built and ``logits`` is None. Loss and gradients are
        those of the unfused path. A training step that needs the logits (a ``Trainer`` with
        ``compute_loss_func`` or a callback reading ``outputs.logits``, distillation) sets
        ``model.config.fused_lm_head_loss = False``, or calls the model without targets. Eval mode
        (``Trainer.evaluate``/``predict``, ``generate``) always returns the logits.
        """
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache if cache is not None else past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            return_dict=True,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int):
            hidden_states = hidden_states[:, -logits_to_keep:, :] if logits_to_keep else hidden_states
        else:
            hidden_states = hidden_states[:, logits_to_keep, :]

        logits = loss = z_loss = None
        has_targets = labels is not None or shift_labels is not None
        if has_targets and self.training and self.config.fused_lm_head_loss and self._lm_head_is_fusable():
            loss, z_loss = self.fused_lm_loss(hidden_states, labels, num_items_in_batch, shift_labels)
        else:
            logits = self.lm_head(hidden_states)
            if has_targets:
                loss, z_loss = self.lm_loss(logits, labels, num_items_in_batch, shift_labels)
        output = _with_cache(
            FoundryCausalLMOutputWithPast,
            getattr(outputs, _CACHE_FIELD),
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            z_loss=z_loss,
        )
        return output if self._return_dict(return_dict) else output.to_tuple()

    def _lm_head_is_fusable(self) -> bool:
        """Whether the fused loss may read ``lm_head.weight`` instead of calling ``lm_head``.

        Only for a plain ``nn.Linear`` without bias whose whole weight this process holds. A
        wrapped or replaced head (a LoRA adapter on it, a bitsandbytes quantized layer) computes
        more than ``hidden @ weight.T``, and DeepSpeed ZeRO-3 gathers a module's parameters only
        inside that module's own call: all of those take the unfused path.
        """
        head = self.lm_head
        return type(head) is nn.Linear and head.bias is None and not hasattr(head.weight, "ds_id")

    def fused_lm_loss(
        self,
        hidden_states: torch.Tensor,
        labels: torch.Tensor | None,
        num_items_in_batch: torch.Tensor | int | None = None,
        shift_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``lm_loss(lm_head(hidden_states), ...)`` without materializing the logits (``FusedLMHeadLoss``).

        Used by ``forward`` in training mode when targets are given and ``config.fused_lm_head_loss``
        is on; it then returns ``logits=None``, as Liger-Kernel's fused loss does.
        """
        targets = self._flat_targets(labels, shift_labels).to(hidden_states.device)
        denominator = (targets != -100).sum() if num_items_in_batch is None else num_items_in_batch
        denominator = torch.as_tensor(denominator, device=hidden_states.device, dtype=torch.float32)
        coef = self.config.z_loss_coef
        hidden = hidden_states.reshape(-1, hidden_states.shape[-1])
        chunk = _loss_chunk_rows(self.config.vocab_size, hidden.device)
        loss, z_loss = FusedLMHeadLoss.apply(hidden, self.lm_head.weight, targets, denominator, coef, chunk)
        return loss, (z_loss if coef else None)

    @staticmethod
    def _flat_targets(labels: torch.Tensor | None, shift_labels: torch.Tensor | None) -> torch.Tensor:
        """Targets aligned with the positions, flattened: ``shift_labels`` as given, else labels[t+1]."""
        if shift_labels is None:
            shift_labels = F.pad(labels, (0, 1), value=-100)[..., 1:]
        return shift_labels.reshape(-1)

    def lm_loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor | None,
        num_items_in_batch: torch.Tensor | int | None = None,
        shift_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(cross-entropy + z-loss, z-loss term or None) for logits at positions t predicting labels[t+1]
        (or ``shift_labels[t]`` when given)."""
        logits = logits.float().reshape(-1, logits.shape[-1])
        targets = self._flat_targets(labels, shift_labels).to(logits.device)
        reduction = "mean" if num_items_in_batch is None else "sum"
        coef = self.config.z_loss_coef
        if not coef:
            loss = F.cross_entropy(logits, targets, ignore_index=-100, reduction=reduction)
            return (loss if num_items_in_batch is None else loss / num_items_in_batch), None
        # One logsumexp serves both terms: CE = lse - logit[target], z = lse^2.
        valid = targets != -100
        lse = torch.logsumexp(logits, dim=-1)
        target_logits = logits.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        denominator = valid.sum() if num_items_in_batch is None else num_items_in_batch
        ce = ((lse - target_logits) * valid).sum() / denominator
        z_loss = coef * (lse.pow(2) * valid).sum() / denominator
        return ce + z_loss, z_loss

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward) at sequence length ``seq_len``, for MFU.

        6 * N + 12 * L * H * S (Kaplan et al. / PaLM appendix B, as in nanoGPT and nanochat):
        N = parameters that take part in matmuls = all parameters minus the input embedding table,
        counting the LM head once even when it is tied (the lookup is free, the head's matmul is not);
        the second term is attention's QK^T and AV (2 matmuls x 2 FLOPs/MAC x 3 for fwd+bwd) with
        L layers, H = num_attention_heads * head_dim and S = seq_len, without discounting the causal mask.
        """
        if seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        cfg = self.config
        embedding = self.model.embed_tokens.weight.numel()
        matmul_params = self.num_parameters() - embedding
        if cfg.tie_word_embeddings:
            matmul_params += self.lm_head.weight.numel()
        head_width = cfg.num_attention_heads * cfg.head_dim
        return float(6 * matmul_params + 12 * cfg.num_hidden_layers * head_width * seq_len)


# --- the fused LM head + loss (training mode, ``FoundryConfig.fused_lm_head_loss``) ---------------


def _loss_chunk_rows(vocab_size: int, device: torch.device) -> int:
    """Rows of logits computed at once by the fused loss: ~16 MB of float32 on CPU, where a chunk
    that stays in cache is what makes it fast, and ~256 MB on accelerators, where fewer, larger
    matmuls are. Never fewer than 256 rows, so the matmuls stay efficient for huge vocabularies."""
    budget = 2**22 if device.type == "cpu" else 2**26
    return max(256, budget // vocab_size)


class FusedLMHeadLoss(torch.autograd.Function):
    """Cross-entropy (+ z-loss) of the LM head's logits ``hidden @ weight.T``, chunk by chunk.

    The ``[tokens, vocab]`` logits are pretraining's largest activation, and ``lm_head`` followed by
    ``F.cross_entropy`` writes them, their log-softmax and the gradient of each as full tensors.
    Here each chunk of logits lives only while its loss and its gradient are computed, both in the
    forward pass; backward scales the stored gradients by the incoming one. Same loss and gradients
    as the unfused path (tested), a fraction of its memory, and measurably faster
    (``benchmarks/model_speed.py``). Gradient of ``ce + coef * lse^2`` per row, with ``p`` the softmax:
    ``p * (1 + 2 * coef * lse) - onehot(target)``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
        denominator: torch.Tensor, z_loss_coef: float, chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Only the gradients autograd will ask for: a frozen head (as under LoRA) costs no [V, H] matmul.
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        ce_sum = hidden.new_zeros((), dtype=torch.float32)
        z_sum = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, hidden.shape[0], chunk):
            rows, row_targets = hidden[start : start + chunk], targets[start : start + chunk]
            logits = (rows @ weight.t()).float()  # under autocast: low-precision matmul, float32 softmax
            valid = (row_targets != -100).unsqueeze(-1)
            index = row_targets.clamp(min=0).unsqueeze(-1)
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)
            ce_sum += torch.where(valid, lse - logits.gather(-1, index), 0.0).sum()
            grad = logits.sub_(lse).exp_()  # softmax, in place of the logits
            if z_loss_coef:
                z_sum += torch.where(valid, lse.square(), 0.0).sum()
                grad.mul_(1.0 + 2.0 * z_loss_coef * lse)
            grad.scatter_add_(-1, index, torch.full_like(lse, -1.0))
            grad = grad.mul_(valid / denominator).to(weight.dtype)
            if grad_hidden is not None:
                grad_hidden[start : start + chunk] = grad @ weight
            if grad_weight is not None:
                grad_weight += grad.t() @ rows.to(weight.dtype)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        z_loss = z_loss_coef * z_sum / denominator
        ctx.mark_non_differentiable(z_loss)  # reported on its own; its gradient flows through the loss
        return ce_sum / denominator + z_loss, z_loss

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, _grad_z: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            None if grad_hidden is None else grad_hidden * grad_loss,
            None if grad_weight is None else (grad_weight * grad_loss).to(ctx.weight_dtype),
            None, None, None, None,
        )


# --- transformers 5.x compatibility, resolved once at import; the Hub's auto_map ------------------
# The models above read these at call time. They are here, not at the top, so the model reads first.
# Name of the cache field on model outputs (``generate`` reads the cache back from it).
_CACHE_FIELD = "cache" if "cache" in {f.name for f in fields(CausalLMOutputWithPast)} else "past_key_values"
_MASK_PARAMS = set(inspect.signature(create_causal_mask).parameters)
# torch >= 2.4; remote-code users on an older torch take RMSNorm's composite path everywhere.
_HAS_FUSED_RMS_NORM = hasattr(F, "rms_norm")

# Keys of the ``auto_map`` written to config.json: AutoModel and AutoModelForCausalLM both load the folder.
AUTO_MAP = {
    "AutoConfig": "configuration_foundry.FoundryConfig",
    "AutoModel": "modeling_foundry.FoundryModel",
    "AutoModelForCausalLM": "modeling_foundry.FoundryForCausalLM",
}


def _causal_mask(
    config: FoundryConfig,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor | None,
    cache: Cache | None,
    position_ids: torch.Tensor,
    cache_position: torch.Tensor,
) -> Any:
    """transformers' causal(+padding) mask in whatever form the attention implementation wants."""
    candidates = {
        "config": config,
        "inputs_embeds": inputs_embeds,
        "input_embeds": inputs_embeds,
        "attention_mask": attention_mask,
        "cache": cache,
        "past_key_values": cache,
        "position_ids": position_ids,
        "cache_position": cache_position,
    }
    return create_causal_mask(**{k: v for k, v in candidates.items() if k in _MASK_PARAMS})


def _with_cache(output_cls: type, cache: Cache | None, **values: Any) -> Any:
    """Build a model output, putting the cache under the field name this transformers release uses."""
    return output_cls(**values, **{_CACHE_FIELD: cache})


__all__ = ["FoundryCausalLMOutputWithPast", "FoundryForCausalLM", "FoundryModel", "FoundryPreTrainedModel", "FusedLMHeadLoss"]
