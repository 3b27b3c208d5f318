"""The package's face: ``import lmfoundry`` is cheap, exports the model classes, and makes the Auto
classes load a saved Foundry folder without remote code. Each check runs in a fresh interpreter,
since what matters is what an import does to a process that has imported nothing yet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    """``python -c code args`` importing this checkout's lmfoundry; fails the test on a nonzero exit."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_import_lmfoundry_is_light_and_exports_the_model_classes():
    run_python(
        """
import sys
import lmfoundry
heavy = sorted(name for name in ("torch", "transformers", "numpy") if name in sys.modules)
assert not heavy, f"import lmfoundry imported {heavy}"
assert {"FoundryConfig", "FoundryModel", "FoundryForCausalLM"} <= set(dir(lmfoundry))
from lmfoundry import FoundryConfig, FoundryForCausalLM, FoundryModel
from lmfoundry.modeling import configuration_foundry, modeling_foundry
assert FoundryConfig is configuration_foundry.FoundryConfig
assert FoundryModel is modeling_foundry.FoundryModel and FoundryForCausalLM is modeling_foundry.FoundryForCausalLM
assert FoundryConfig.model_type == lmfoundry._MODEL_TYPE
try:
    lmfoundry.NoSuchName
except AttributeError as err:
    assert "NoSuchName" in str(err)
else:
    raise AssertionError("lmfoundry.NoSuchName did not raise AttributeError")
"""
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """A saved Foundry folder (with its remote code and auto_map, as every saved folder has), input ids
    and the model's logits on them."""
    folder = tmp_path_factory.mktemp("foundry")
    torch.manual_seed(0)
    config = FoundryConfig(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    model = FoundryForCausalLM(config).eval()
    model.save_pretrained(folder)
    assert "AutoModelForCausalLM" in json.loads((folder / "config.json").read_text())["auto_map"]
    ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(ids).logits
    return folder, ids, logits


# How a process may come to the Auto classes. "lmfoundry first" takes the lazy route (Foundry's names
# entered in transformers' tables as they load); importing Llama on the way makes transformers import
# its Auto tables from inside its own half-imported modeling_layers, which the model itself needs.
# "transformers first" finds the tables loaded and registers the classes at once.
PRELUDES = {
    "lmfoundry first": """
import sys
import lmfoundry
assert "torch" not in sys.modules
from transformers import LlamaForCausalLM
""",
    "transformers first": """
from transformers import AutoModelForCausalLM
import lmfoundry
""",
}

LOAD = """
import json, sys
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
folder, ids = sys.argv[1], torch.tensor(json.loads(sys.argv[2]))
config = AutoConfig.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder).eval()
base = AutoModel.from_pretrained(folder)
with torch.no_grad():
    logits = model(ids).logits
print(json.dumps({"classes": [type(config).__module__ + "." + type(config).__name__,
                              type(model).__module__ + "." + type(model).__name__,
                              type(base).__module__ + "." + type(base).__name__],
                  "logits": logits.tolist()}))
"""


@pytest.mark.parametrize("prelude", PRELUDES)
def test_auto_classes_load_a_foundry_folder_after_only_import_lmfoundry(saved, prelude):
    """No ``trust_remote_code``: the folder's own modeling files are not run; lmfoundry's classes are."""
    folder, ids, logits = saved
    result = run_python(PRELUDES[prelude] + LOAD, str(folder), json.dumps(ids.tolist()))
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["classes"] == [
        "lmfoundry.modeling.configuration_foundry.FoundryConfig",
        "lmfoundry.modeling.modeling_foundry.FoundryForCausalLM",
        "lmfoundry.modeling.modeling_foundry.FoundryModel",
    ]
    assert torch.equal(torch.tensor(out["logits"]), logits)


def test_help_imports_no_torch():
    run_python(
        """
import runpy, sys
sys.argv = ["lmfoundry", "--help"]
try:
    runpy.run_module("lmfoundry", run_name="__main__")
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
heavy = sorted(name for name in ("torch", "transformers", "datatrove", "accelerate") if name in sys.modules)
assert not heavy, f"lmfoundry --help imported {heavy}"
"""
    )
