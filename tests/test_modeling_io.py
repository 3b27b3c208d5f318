"""Saving and loading Foundry models: round trips, Auto classes, remote code, pipeline, Llama conversion."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, pipeline

from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM, FoundryModel
from lmfoundry.modeling.convert import foundry_to_llama, llama_to_foundry
from lmfoundry.tokenization import special_token_ids, train_tokenizer

VOCAB = 320


def tiny_model(seed: int = 0, **overrides) -> FoundryForCausalLM:
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=1000.0,
    )
    fields.update(overrides)
    torch.manual_seed(seed)
    model = FoundryForCausalLM(FoundryConfig(**fields)).eval()
    with torch.no_grad():  # norms start at 1; perturb them so a norm that fails to load is noticed
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, FoundryForCausalLM, torch.Tensor, torch.Tensor]:
    """A saved model folder, the model, fixed input ids and the model's logits on them."""
    folder = tmp_path_factory.mktemp("foundry")
    model = tiny_model()
    model.save_pretrained(folder)
    ids = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(ids).logits
    return folder, model, ids, logits


@pytest.mark.parametrize("tied", [False, True])
def test_save_load_round_trip_is_bitwise(tmp_path, tied):
    model = tiny_model(tie_word_embeddings=tied, qk_norm=True)
    model.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert {"config.json", "model.safetensors", "configuration_foundry.py", "modeling_foundry.py"} <= set(files)
    assert not any(name.endswith(".bin") for name in files)
    loaded = FoundryForCausalLM.from_pretrained(tmp_path).eval()
    assert_same_state(model, loaded)
    # RoPE frequencies are non-persistent buffers rebuilt after loading on the meta device
    assert torch.equal(loaded.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq)
    ids = torch.randint(0, VOCAB, (2, 9))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    if tied:
        assert "lm_head.weight" not in weights(tmp_path)
        assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()


def test_auto_classes_load_without_remote_code(saved):
    folder, model, ids, logits = saved
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "foundry"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_foundry.FoundryConfig",
        "AutoModel": "modeling_foundry.FoundryModel",
        "AutoModelForCausalLM": "modeling_foundry.FoundryForCausalLM",
    }
    causal = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(causal) is FoundryForCausalLM
    with torch.no_grad():
        assert torch.equal(causal(ids).logits, logits)
    base = AutoModel.from_pretrained(folder).eval()
    assert type(base) is FoundryModel
    assert_same_state(base, model.model)
    with torch.no_grad():
        assert torch.equal(base(ids).last_hidden_state, model.model(ids).last_hidden_state)


def test_bf16_save_load_keeps_dtype(tmp_path):
    model = tiny_model().to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    assert weights(tmp_path)["model.norm.weight"].dtype == torch.bfloat16
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype="auto")
    assert loaded.dtype == torch.bfloat16
    assert_same_state(model, loaded)


REMOTE_LOAD = r"""
import importlib.util, json, sys
assert importlib.util.find_spec("lmfoundry") is None, "lmfoundry must not be importable here"
import torch
from transformers import AutoModel, AutoModelForCausalLM
folder, ids_path, out_path = sys.argv[1:4]
ids = torch.tensor(json.load(open(ids_path)))
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
base = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(ids).logits
    hidden = base(ids).last_hidden_state
    generated = model.generate(ids[:1, :4], max_new_tokens=5, do_sample=False, eos_token_id=None, pad_token_id=0)
assert "lmfoundry" not in sys.modules
json.dump({"causal": type(model).__module__, "base": type(base).__module__, "logits": logits.tolist(),
           "hidden": hidden.tolist(), "generated": generated.tolist()}, open(out_path, "w"))
"""


def test_remote_code_loads_in_a_process_without_lmfoundry(saved, tmp_path):
    folder, model, ids, logits = saved
    (tmp_path / "ids.json").write_text(json.dumps(ids.tolist()))
    # -I: ignore PYTHON* variables, user site and the cwd; -S: skip site, so the editable-install
    # finder (.pth) never runs. Site-packages is then put on sys.path by hand, without its .pth hooks.
    site_dirs = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    code = f"import sys; sys.path.extend({site_dirs!r})\n" + REMOTE_LOAD
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(folder), str(tmp_path / "ids.json"), str(tmp_path / "out.json")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["causal"].startswith("transformers_modules.") and out["causal"].endswith("modeling_foundry")
    assert out["base"] == out["causal"]
    assert torch.equal(torch.tensor(out["logits"]), logits)
    with torch.no_grad():
        assert torch.equal(torch.tensor(out["hidden"]), model.model(ids).last_hidden_state)
        expected = model.generate(ids[:1, :4], max_new_tokens=5, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert out["generated"] == expected.tolist()
    assert (tmp_path / "hf_home" / "modules").is_dir()  # remote code was cached in our HF_HOME


def test_text_generation_pipeline_with_a_trained_tokenizer(tmp_path):
    corpus = [f"The quick brown fox {i} jumps over the lazy dog number {i * 7}." for i in range(300)]
    tokenizer = train_tokenizer(corpus, vocab_size=VOCAB, output_dir=tmp_path, show_progress=False)
    model = tiny_model(
        **special_token_ids(tokenizer),
    )
    model.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path))
    out = generator("The quick brown", max_new_tokens=6, do_sample=False)
    text = out[0]["generated_text"]
    assert text.startswith("The quick brown")
    prompt_ids = AutoTokenizer.from_pretrained(tmp_path)("The quick brown", return_tensors="pt").input_ids
    expected = model.generate(prompt_ids, max_new_tokens=6, do_sample=False)
    assert text == tokenizer.decode(expected[0], skip_special_tokens=True)


def test_foundry_llama_foundry_round_trip_is_bitwise(saved, tmp_path):
    folder, _, ids, logits = saved
    llama_dir = foundry_to_llama(folder, tmp_path / "llama")
    config = json.loads((llama_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and "auto_map" not in config
    assert not (llama_dir / "modeling_foundry.py").exists()
    llama = AutoModelForCausalLM.from_pretrained(llama_dir).eval()
    assert type(llama) is LlamaForCausalLM
    with torch.no_grad():
        assert (llama(ids).logits - logits).abs().max().item() < 1e-5
    back = llama_to_foundry(llama_dir, tmp_path / "foundry")
    assert (back / "modeling_foundry.py").is_file()
    original, restored = weights(folder), weights(back)
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[key], restored[key]) for key in original)
    reloaded = AutoModelForCausalLM.from_pretrained(back).eval()
    assert type(reloaded) is FoundryForCausalLM
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, logits)


def test_conversion_refuses_what_llama_cannot_express(tmp_path, caplog):
    tiny_model(qk_norm=True).save_pretrained(tmp_path / "qk")
    with pytest.raises(ValueError, match="qk_norm=true has no Llama equivalent"):
        foundry_to_llama(tmp_path / "qk", tmp_path / "out")
    assert not (tmp_path / "out").exists()

    tiny_model(z_loss_coef=1e-4).save_pretrained(tmp_path / "z")
    with caplog.at_level(logging.WARNING, logger="lmfoundry.modeling.convert"):
        converted = foundry_to_llama(tmp_path / "z", tmp_path / "out")
    assert "dropping z_loss_coef" in caplog.text
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        foundry_to_llama(tmp_path / "z", converted)

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text((tmp_path / "z" / "config.json").read_text())
    with pytest.raises(ValueError, match=r"no \*\.safetensors weights"):
        foundry_to_llama(tmp_path / "empty", tmp_path / "out2")


def test_llama_to_foundry_checks_weight_names(saved, tmp_path):
    folder, *_ = saved
    llama_dir = foundry_to_llama(folder, tmp_path / "llama")
    state = weights(llama_dir)
    state.pop("model.norm.weight")
    save_file(state, llama_dir / "model.safetensors")
    with pytest.raises(ValueError, match=r"missing: \['model.norm.weight'\]"):
        llama_to_foundry(llama_dir, tmp_path / "foundry")
