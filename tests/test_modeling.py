"""The Foundry model's behaviour: Llama parity, attention implementations, caching, losses, init, FLOPs."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM, StaticCache

from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM, FoundryModel
from lmfoundry.modeling.convert import foundry_config_from_llama, llama_config_from_foundry
from lmfoundry.modeling.modeling_foundry import FoundryRMSNorm, FusedLMHeadLoss

VOCAB = 101


def tiny_config(**overrides) -> FoundryConfig:
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
    )
    fields.update(overrides)
    return FoundryConfig(**fields)


def tiny_model(seed: int = 0, **overrides) -> FoundryForCausalLM:
    torch.manual_seed(seed)
    return FoundryForCausalLM(tiny_config(**overrides)).eval()


def randomize_norms(model: torch.nn.Module) -> None:
    """Norm weights start at 1; perturb them so a test notices a norm that is skipped or misplaced."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                param.add_(torch.randn_like(param) * 0.1)


def llama_twin(model: FoundryForCausalLM) -> LlamaForCausalLM:
    llama = LlamaForCausalLM(llama_config_from_foundry(model.config)).eval()
    llama.load_state_dict(model.state_dict(), strict=True)
    return llama


@pytest.mark.parametrize(
    ("kv_heads", "extra"),
    [
        (4, {}),  # multi-head
        (2, {"tie_word_embeddings": True}),  # grouped-query, tied head
        (1, {"attention_bias": True, "mlp_bias": True}),  # multi-query, biases
        (2, {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}}),
        # dynamic NTK rescales the frequencies once the 17 tokens exceed max_position_embeddings
        (2, {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0}, "max_position_embeddings": 8}),
    ],
)
def test_logits_match_llama_on_the_same_weights(kv_heads, extra):
    model = tiny_model(num_key_value_heads=kv_heads, **extra)
    randomize_norms(model)
    llama = llama_twin(model)
    ids = torch.randint(2, VOCAB, (2, 17))
    with torch.no_grad():
        ours, ref = model(ids).logits, llama(ids).logits
    assert (ours - ref).abs().max().item() < 1e-4
    if extra.get("tie_word_embeddings"):
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_eager_and_sdpa_agree_with_padding():
    model = tiny_model()
    randomize_norms(model)
    ids = torch.randint(2, VOCAB, (2, 12))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding on the first row
    outputs = {}
    for impl in ("eager", "sdpa"):
        model.set_attn_implementation(impl)
        assert model.config._attn_implementation == impl
        with torch.no_grad():
            outputs[impl] = model(ids, attention_mask=mask).logits
    valid = mask.bool()
    assert (outputs["eager"][valid] - outputs["sdpa"][valid]).abs().max().item() < 1e-5


def test_eager_attention_returns_probabilities():
    model = tiny_model()
    model.set_attn_implementation("eager")
    out = model(torch.randint(2, VOCAB, (1, 6)), output_attentions=True, output_hidden_states=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (1, 4, 6, 6)
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(1, 4, 6), atol=1e-5)
    assert len(out.hidden_states) == 3  # embeddings + one per layer (the last one normed)


def test_greedy_generation_with_cache_equals_without():
    model = tiny_model()
    prompt = torch.randint(2, VOCAB, (2, 5))
    kwargs = dict(max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
    with_cache = model.generate(prompt, use_cache=True, **kwargs)
    without = model.generate(prompt, use_cache=False, **kwargs)
    assert with_cache.shape == (2, 17)
    assert torch.equal(with_cache, without)


def test_incremental_forward_with_cache_matches_full_forward():
    model = tiny_model()
    ids = torch.randint(2, VOCAB, (1, 9))
    with torch.no_grad():
        full = model(ids).logits
        first = model(ids[:, :6], use_cache=True)
        rest = model(ids[:, 6:], cache=first.cache, use_cache=True).logits
        # the pre-5.x keyword still works
        legacy_first = model(ids[:, :6], use_cache=True)
        legacy = model(ids[:, 6:], past_key_values=legacy_first.cache, use_cache=True).logits
    assert (rest - full[:, 6:]).abs().max().item() < 1e-5
    assert torch.equal(rest, legacy)


def test_batched_left_padded_generation_equals_one_by_one():
    model = tiny_model()
    prompts = [torch.randint(2, VOCAB, (n,)) for n in (3, 7, 5)]
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = prompt
        mask[row, width - len(prompt) :] = 1
    kwargs = dict(max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0)
    batched = model.generate(ids, attention_mask=mask, **kwargs)
    for row, prompt in enumerate(prompts):
        alone = model.generate(prompt[None], **kwargs)
        assert torch.equal(batched[row, width:], alone[0, len(prompt) :])


def test_static_cache_generation_equals_dynamic():
    model = tiny_model()
    prompt = torch.randint(2, VOCAB, (2, 6))
    kwargs = dict(max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=0)
    dynamic = model.generate(prompt, **kwargs)
    static = model.generate(prompt, cache_implementation="static", **kwargs)
    cache = StaticCache(config=model.config, max_cache_len=32)
    explicit = model.generate(prompt, cache=cache, **kwargs)
    assert torch.equal(dynamic, static)
    assert torch.equal(dynamic, explicit)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_size": 60, "num_attention_heads": 8}, "hidden_size=60 must be divisible by num_attention_heads=8"),
        ({"num_attention_heads": 4, "num_key_value_heads": 3}, "num_attention_heads=4 must be divisible by num_key_value_heads=3"),
        ({"num_key_value_heads": 8}, "num_key_value_heads=8 must be <= num_attention_heads=4"),
        ({"hidden_size": 36, "num_attention_heads": 4}, "head_dim = hidden_size / num_attention_heads = 9 must be even"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer, got 0"),
        ({"vocab_size": -5}, "vocab_size must be a positive integer, got -5"),
        ({"num_hidden_layers": 2.5}, "num_hidden_layers must be a positive integer, got 2.5"),
        ({"num_key_value_heads": 0}, "num_key_value_heads must be a positive integer, got 0"),
        ({"rope_parameters": {"rope_type": "spiral"}}, "rope_type']='spiral' is not supported; allowed: default, dynamic"),
        ({"rope_theta": -1.0}, "rope_theta must be > 0"),
        ({"rope_parameters": {"rope_type": "linear"}}, "Missing required keys in `rope_parameters` for 'rope_type'='linear'"),
        ({"z_loss_coef": -1e-4}, "z_loss_coef must be >= 0"),
        ({"rms_norm_eps": 0.0}, "rms_norm_eps must be > 0"),
        ({"hidden_act": "gelu"}, "hidden_act='gelu' is not supported; the MLP is SwiGLU: 'silu' only"),
        ({"attention_dropout": 1.0}, "attention_dropout must be in [0, 1)"),
        ({"head_dim": 32}, "head_dim=32 does not match hidden_size / num_attention_heads = 16"),
    ],
)
def test_invalid_configs_fail_at_construction(overrides, message):
    with pytest.raises(ValueError) as err:
        tiny_config(**overrides)
    assert message in str(err.value)


def test_config_field_names_and_round_trip(tmp_path):
    config = tiny_config(rope_theta=5e5, qk_norm=True, z_loss_coef=1e-4)
    assert config.model_type == "foundry" and config.rope_theta == 5e5
    assert config.rope_parameters == {"rope_type": "default", "rope_theta": 5e5}
    config.save_pretrained(tmp_path)
    loaded = FoundryConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    legacy = tiny_config(rope_scaling={"type": "linear", "factor": 4.0})  # pre-5.x spelling
    assert legacy.rope_parameters == {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}


def test_loss_is_shifted_cross_entropy_ignoring_masked_labels():
    model = tiny_model()
    ids = torch.randint(2, VOCAB, (2, 10))
    labels = ids.clone()
    labels[0, :4] = -100
    out = model(ids, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, VOCAB)
    expected = F.cross_entropy(logits, labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(out.loss, expected, atol=1e-6)
    assert out.z_loss is None
    summed = model(ids, labels=labels, num_items_in_batch=40).loss
    n_valid = (labels[:, 1:] != -100).sum()
    assert torch.allclose(summed, expected * n_valid / 40, atol=1e-6)


def test_shift_labels_train_every_prediction_of_a_window():
    """A window of S+1 tokens: inputs w[:, :-1] with shift_labels w[:, 1:] give the same loss as the
    full window with labels (causal attention: the extra last position changes no earlier logit)."""
    model = tiny_model()
    window = torch.randint(2, VOCAB, (2, 11))
    aligned = model(window[:, :-1], shift_labels=window[:, 1:])
    full = model(window, labels=window)
    assert torch.allclose(aligned.loss, full.loss, atol=1e-6)
    expected = F.cross_entropy(aligned.logits.reshape(-1, VOCAB), window[:, 1:].reshape(-1))
    assert torch.allclose(aligned.loss, expected, atol=1e-6)


def test_z_loss_adds_coef_times_mean_squared_logsumexp():
    coef = 1e-2
    plain, with_z = tiny_model(seed=3), tiny_model(seed=3, z_loss_coef=coef)
    ids = torch.randint(2, VOCAB, (2, 10))
    labels = ids.clone()
    labels[1, :5] = -100
    base = plain(ids, labels=labels)
    out = with_z(ids, labels=labels)
    valid = labels[:, 1:] != -100
    lse = torch.logsumexp(base.logits[:, :-1].float(), dim=-1)[valid]
    expected_z = coef * lse.pow(2).mean()
    assert torch.allclose(out.z_loss, expected_z, rtol=1e-5)
    assert torch.allclose(out.loss, base.loss + expected_z, rtol=1e-5)
    out.loss.backward()
    assert with_z.lm_head.weight.grad is not None


def param_grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.grad.clone() for name, param in model.named_parameters()}


@pytest.mark.parametrize(
    ("overrides", "loss_kwargs"),
    [
        ({}, {}),
        ({"z_loss_coef": 1e-2, "tie_word_embeddings": True}, {}),
        ({}, {"num_items_in_batch": 50}),
        ({"z_loss_coef": 1e-3}, {"shift_labels": True}),
    ],
)
def test_training_mode_fuses_head_and_loss_with_the_same_loss_and_gradients(overrides, loss_kwargs):
    """Training mode never builds the logits (``logits`` is None) yet gives the unfused path's loss,
    z-loss and every parameter's gradient."""
    model = tiny_model(**overrides)
    randomize_norms(model)
    ids = torch.randint(2, VOCAB, (3, 16))
    labels = ids.clone()
    labels[0, :5] = -100
    kwargs = dict(loss_kwargs)
    if kwargs.pop("shift_labels", False):
        kwargs["shift_labels"] = F.pad(labels, (0, 1), value=-100)[:, 1:]
    else:
        kwargs["labels"] = labels
    results = {}
    for mode in ("eval", "train"):
        getattr(model, mode)()
        model.zero_grad()
        out = model(ids, **kwargs)
        out.loss.backward()
        results[mode] = out, param_grads(model)
    (unfused, unfused_grads), (fused, fused_grads) = results["eval"], results["train"]
    assert unfused.logits is not None and fused.logits is None
    assert torch.allclose(fused.loss, unfused.loss, atol=1e-6)
    assert (fused.z_loss is None) == (unfused.z_loss is None) == (not overrides.get("z_loss_coef"))
    if fused.z_loss is not None:
        assert torch.allclose(fused.z_loss, unfused.z_loss, atol=1e-7)
    for name, grad in unfused_grads.items():
        assert torch.allclose(fused_grads[name], grad, atol=1e-6), name


def test_fused_lm_head_loss_off_returns_training_logits_with_the_unfused_loss(tmp_path):
    """``fused_lm_head_loss=False`` (what a Trainer whose loss reads the logits sets) gives the
    logits in training mode, and exactly eval mode's logits, loss and gradients; the switch is on by
    default, survives save/load, and a config.json written before it existed reads as on."""
    assert tiny_config().fused_lm_head_loss is True
    model = tiny_model(fused_lm_head_loss=False)
    randomize_norms(model)
    ids = torch.randint(2, VOCAB, (2, 12))
    results = {}
    for mode in ("eval", "train"):
        getattr(model, mode)()
        model.zero_grad()
        out = model(ids, labels=ids)
        out.loss.backward()
        results[mode] = out, param_grads(model)
    (evaluated, eval_grads), (trained, train_grads) = results["eval"], results["train"]
    assert trained.logits is not None and torch.equal(trained.logits, evaluated.logits)
    assert torch.equal(trained.loss, evaluated.loss)
    assert all(torch.equal(train_grads[name], grad) for name, grad in eval_grads.items())
    model.config.fused_lm_head_loss = True
    assert model(ids, labels=ids).logits is None

    model.config.fused_lm_head_loss = False
    model.config.save_pretrained(tmp_path)
    assert FoundryConfig.from_pretrained(tmp_path).fused_lm_head_loss is False
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["fused_lm_head_loss"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert FoundryConfig.from_pretrained(tmp_path).fused_lm_head_loss is True
    with pytest.raises(ValueError, match="fused_lm_head_loss must be true or false, got 'no'"):
        tiny_config(fused_lm_head_loss="no")


def test_fused_lm_head_loss_is_independent_of_the_chunking():
    """Rows are processed in chunks; every chunk size, ignored rows and an upstream gradient scale
    give ``F.cross_entropy``'s loss and gradients."""
    torch.manual_seed(0)
    hidden = torch.randn(23, 16, requires_grad=True)
    weight = torch.randn(VOCAB, 16, requires_grad=True)
    targets = torch.randint(0, VOCAB, (23,))
    targets[[2, 9, 10]] = -100
    reference = F.cross_entropy(hidden @ weight.t(), targets, ignore_index=-100)
    (3.0 * reference).backward()
    expected = hidden.grad.clone(), weight.grad.clone()
    denominator = (targets != -100).sum().float()
    for chunk in (1, 5, 23, 64):
        hidden.grad = weight.grad = None
        loss, z_loss = FusedLMHeadLoss.apply(hidden, weight, targets, denominator, 0.0, chunk)
        (3.0 * loss).backward()
        assert torch.allclose(loss, reference, atol=1e-6) and z_loss.item() == 0.0, chunk
        assert torch.allclose(hidden.grad, expected[0], atol=1e-6), chunk
        assert torch.allclose(weight.grad, expected[1], atol=1e-6), chunk


def test_frozen_head_gets_no_gradient_and_the_rest_the_same():
    """A frozen LM head (as under LoRA) is left without a gradient, and the fused path skips its
    matmul; every other parameter still gets the unfused path's gradient."""
    model = tiny_model()
    model.lm_head.weight.requires_grad_(False)
    ids = torch.randint(2, VOCAB, (2, 12))
    results = {}
    for mode in ("eval", "train"):
        getattr(model, mode)()
        model.zero_grad()
        model(ids, labels=ids).loss.backward()
        results[mode] = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        assert model.lm_head.weight.grad is None
    for name, grad in results["eval"].items():
        assert torch.allclose(results["train"][name], grad, atol=1e-6), name


def test_a_replaced_head_is_called_not_bypassed():
    """A head that computes more than ``hidden @ weight.T`` (an adapter, a quantized layer) keeps
    its own forward in training: the fused loss only takes a plain ``nn.Linear``."""

    class ScaledHead(torch.nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2.0 * super().forward(x)

    model = tiny_model()
    ids = torch.randint(2, VOCAB, (2, 12))
    plain = model.train()(ids, labels=ids)
    scaled = ScaledHead(64, VOCAB, bias=False)
    scaled.weight = model.lm_head.weight
    model.lm_head = scaled
    out = model(ids, labels=ids)
    assert out.logits is not None  # the unfused path ran, through the head's own forward
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, expected, atol=1e-6) and not torch.allclose(out.loss, plain.loss)


def test_training_loss_and_gradients_match_llama():
    """The fused training path trains exactly like ``LlamaForCausalLM`` on the same weights."""
    model = tiny_model().train()
    randomize_norms(model)
    llama = llama_twin(model).train()
    ids = torch.randint(2, VOCAB, (2, 17))
    ours = model(ids, labels=ids).loss
    ref = llama(ids, labels=ids).loss
    ours.backward()
    ref.backward()
    assert torch.allclose(ours, ref, atol=1e-5)
    llama_grads = param_grads(llama)
    for name, grad in param_grads(model).items():
        assert torch.allclose(grad, llama_grads[name], atol=1e-5), name


def test_fused_loss_under_bf16_autocast_matches_the_unfused_path():
    model = tiny_model(z_loss_coef=1e-3)
    ids = torch.randint(2, VOCAB, (2, 12))
    results = {}
    for mode in ("eval", "train"):
        getattr(model, mode)()
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(ids, labels=ids).loss
        loss.backward()
        results[mode] = loss.detach(), param_grads(model)
    assert torch.allclose(results["train"][0], results["eval"][0], rtol=1e-3)
    for name, grad in results["eval"][1].items():
        assert grad.dtype == torch.float32 == results["train"][1][name].dtype
        assert torch.allclose(results["train"][1][name], grad, rtol=2e-2, atol=1e-4), name


def test_rms_norm_gives_the_same_result_with_and_without_autograd():
    """Inference takes torch's fused kernel, training the composite form (see ``FoundryRMSNorm``)."""
    norm = FoundryRMSNorm(32, eps=1e-6)
    with torch.no_grad():
        norm.weight.add_(torch.randn(32))
    x = torch.randn(4, 3, 32) * 5
    with torch.no_grad():
        fused = norm(x)
    composite = norm(x.requires_grad_())
    assert composite.grad_fn is not None
    assert torch.allclose(fused, composite, atol=1e-6)
    expected = norm.weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert torch.allclose(composite, expected, atol=1e-5)


def test_qk_norm_makes_attention_invariant_to_query_and_key_scale():
    model = tiny_model(qk_norm=True, rms_norm_eps=1e-9)  # eps is the only thing that breaks scale invariance
    randomize_norms(model)
    attn = model.model.layers[0].self_attn
    assert attn.q_norm.weight.shape == (16,) and attn.k_norm.weight.shape == (16,)
    ids = torch.randint(2, VOCAB, (1, 8))
    with torch.no_grad():
        before = model(ids).logits
        attn.q_proj.weight.mul_(7.0)
        attn.k_proj.weight.mul_(0.5)
        after = model(ids).logits
    assert (before - after).abs().max().item() < 1e-4
    plain = tiny_model()  # without QK-norm the same rescaling changes the output
    with torch.no_grad():
        before = plain(ids).logits
        plain.model.layers[0].self_attn.q_proj.weight.mul_(7.0)
        assert (before - plain(ids).logits).abs().max().item() > 1e-3


def test_gradient_checkpointing_gives_the_same_gradients():
    model = tiny_model(qk_norm=True).train()
    ids = torch.randint(2, VOCAB, (2, 12))

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(ids, labels=ids).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain = grads()
    model.activation_checkpointing_enable()  # transformers 5.x name of gradient_checkpointing_enable
    assert model.model.layers[0].gradient_checkpointing
    checkpointed = grads()
    for name, grad in plain.items():
        assert torch.allclose(grad, checkpointed[name], atol=1e-6), name


def test_init_scales_residual_output_projections_by_depth():
    layers = 8
    model = FoundryForCausalLM(tiny_config(hidden_size=128, intermediate_size=256, num_hidden_layers=layers))
    std = model.config.initializer_range
    residual_std = std / math.sqrt(2 * layers)
    for layer in model.model.layers:
        for weight in (layer.self_attn.o_proj.weight, layer.mlp.down_proj.weight):
            assert weight.std().item() == pytest.approx(residual_std, rel=0.08)
        for weight in (layer.self_attn.q_proj.weight, layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight):
            assert weight.std().item() == pytest.approx(std, rel=0.08)
        assert torch.equal(layer.input_layernorm.weight, torch.ones(128))
    assert model.model.embed_tokens.weight[1:].std().item() == pytest.approx(std, rel=0.08)
    assert model.lm_head.weight.std().item() == pytest.approx(std, rel=0.08)


def test_num_parameters_and_flops_per_token_by_hand():
    h, inter, layers, heads, kv, vocab, seq = 64, 96, 2, 4, 2, VOCAB, 32
    head_dim = h // heads
    per_layer = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h + 3 * h * inter + 2 * h
    for tied in (False, True):
        model = tiny_model(tie_word_embeddings=tied)
        total = vocab * h + layers * per_layer + h + (0 if tied else vocab * h)
        assert model.num_parameters() == total
        matmul_params = layers * per_layer + h + vocab * h  # embedding lookup is free, the head is not
        assert model.flops_per_token(seq) == 6 * matmul_params + 12 * layers * h * seq
    with pytest.raises(ValueError, match="seq_len must be positive"):
        model.flops_per_token(0)


def test_base_model_returns_normed_hidden_states():
    model = tiny_model()
    ids = torch.randint(2, VOCAB, (1, 5))
    base = model.model
    assert isinstance(base, FoundryModel)
    hidden = base(ids).last_hidden_state
    assert torch.allclose(model.lm_head(hidden), model(ids).logits)
    as_tuple = model(ids, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], model(ids).logits)


def test_config_conversion_to_llama_and_back():
    config = tiny_config(tie_word_embeddings=True, attention_bias=True, rope_theta=5e5)
    llama_config = llama_config_from_foundry(config)
    assert isinstance(llama_config, LlamaConfig) and llama_config.head_dim == 16
    back = foundry_config_from_llama(llama_config)
    for field in ("hidden_size", "num_key_value_heads", "rope_parameters", "tie_word_embeddings", "attention_bias"):
        assert getattr(back, field) == getattr(config, field)
    with pytest.raises(ValueError, match="qk_norm=true has no Llama equivalent"):
        llama_config_from_foundry(tiny_config(qk_norm=True))
    with pytest.raises(ValueError, match="hidden_act='gelu'; Foundry's MLP is SwiGLU"):
        foundry_config_from_llama(LlamaConfig(hidden_size=64, num_attention_heads=4, hidden_act="gelu"))
    with pytest.raises(ValueError, match="head_dim=32 differs from hidden_size / num_attention_heads = 16"):
        foundry_config_from_llama(LlamaConfig(hidden_size=64, num_attention_heads=4, head_dim=32))
