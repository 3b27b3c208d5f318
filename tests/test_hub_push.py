"""Push to a Hub and load back by repo id, against a local Hub-compatible server (tests/hub_server.py).

huggingface_hub reads HF_ENDPOINT when it is imported, so each client runs in a fresh subprocess
pointed at the server: one pushes (bad inputs first, then real pushes), one loads the pushed repo
with plain transformers (lmfoundry not imported, so the modeling code must come from the repo).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from hub_server import LocalHub
from test_hub_fixtures import build_run_folder

from lmfoundry.generation import SamplingSettings, generate, load_model

TOKEN = "hf_lmfoundrySECRETtoken0123456789abcdef"
WRONG_TOKEN = "hf_someoneELSEStoken0123456789abcdef"
REPO = "alice/tiny-foundry"
OTHER_REPO = "alice/resharded"
PROMPT = "In the beginning"

PUSH_SCRIPT = textwrap.dedent("""
    import contextlib, io, json, os, sys
    from lmfoundry.cli import main

    def run(argv, token=None):
        os.environ.pop("HF_TOKEN", None)
        if token:
            os.environ["HF_TOKEN"] = token
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["-v", *argv])
        sys.stdout.write(out.getvalue())
        sys.stderr.write(err.getvalue())
        return {"rc": rc, "out": out.getvalue(), "err": err.getvalue()}

    cases, pushes, generate_argv = json.loads(sys.argv[1])
    report = {"bad": [run(argv, token) for argv, token in cases]}
    report["push"] = [run(argv, token) for argv, token in pushes]
    report["generate"] = run(*generate_argv)
    print("REPORT " + json.dumps(report))
""")

LOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    repo, prompt = sys.argv[1], sys.argv[2]
    model = AutoModelForCausalLM.from_pretrained(repo, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(repo)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits[0, -1]
    generator = pipeline("text-generation", model=repo, trust_remote_code=True)
    text = generator(prompt, max_new_tokens=6, do_sample=False)[0]["generated_text"]
    print("REPORT " + json.dumps({
        "module": type(model).__module__, "lmfoundry_imported": "lmfoundry" in sys.modules,
        "ids": ids[0].tolist(), "logits": logits.tolist(), "text": text, "eos": tokenizer.eos_token,
    }))
""")


def _client(hub: LocalHub, tmp_path, script: str, *args: str, token: str | None = None) -> dict:
    # Xet stays enabled, as for users: upload_folder takes its default pipelined path, and the server
    # answers every preupload with "regular", so file contents travel in the commit itself.
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "client-hf-home"))
    for name in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        env.pop(name, None)
    if token:
        env["HF_TOKEN"] = token
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.split("REPORT ", 1)[1])
    report["all_output"] = proc.stdout + proc.stderr
    return report


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """Run the bad pushes, then two good ones, in one client process; keep the server for loading."""
    tmp = tmp_path_factory.mktemp("push")
    run_dir = tmp / "run"
    model = build_run_folder(run_dir)
    for name, remove in (("no-tokenizer", ["tokenizer.json", "tokenizer_config.json"]),
                         ("no-weights", ["model.safetensors"]), ("bin-only", ["model.safetensors"]),
                         ("no-code", ["modeling_foundry.py"]), ("lost-shard", [])):
        shutil.copytree(run_dir / "model", tmp / name)
        for file in remove:
            (tmp / name / file).unlink()
    torch.save(model.state_dict(), tmp / "bin-only" / "pytorch_model.bin")
    (tmp / "lost-shard" / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}))
    manual = tmp / "manual"  # a hand-written card, and no generation config
    shutil.copytree(run_dir / "model", manual)
    (manual / "README.md").write_text("# My own card\n")
    (manual / "generation_config.json").unlink()
    sharded = tmp / "sharded"  # the same weights in two shards and an index
    model.save_pretrained(sharded, max_shard_size="100KB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(run_dir / "model" / name, sharded)
    cases = [
        (["push", "--model", str(run_dir), "--repo-id", "alice/bad-no-token"], None),
        (["push", "--model", str(run_dir), "--repo-id", "not a valid id!"], TOKEN),
        (["push", "--model", str(run_dir), "--repo-id", "alice/bad/nested"], TOKEN),
        (["push", "--model", str(tmp / "no-tokenizer"), "--repo-id", "alice/bad-tokenizer"], TOKEN),
        (["push", "--model", str(tmp / "no-weights"), "--repo-id", "alice/bad-weights"], TOKEN),
        (["push", "--model", str(tmp / "bin-only"), "--repo-id", "alice/bad-bin"], TOKEN),
        (["push", "--model", str(tmp / "no-code"), "--repo-id", "alice/bad-code"], TOKEN),
        (["push", "--model", str(tmp / "lost-shard"), "--repo-id", "alice/bad-shard"], TOKEN),
        (["push", "--model", str(tmp / "nowhere"), "--repo-id", "alice/bad-path"], TOKEN),
    ]
    pushes = [
        (["push", "--model", str(run_dir), "--repo-id", REPO, "--private"], TOKEN),
        (["push", "--model", str(manual), "--repo-id", REPO, "--revision", "dev", "--commit-message", "manual card"], TOKEN),
        (["push", "--model", str(run_dir), "--repo-id", REPO], WRONG_TOKEN),
        (["push", "--model", str(sharded), "--repo-id", OTHER_REPO], TOKEN),
        (["push", "--model", str(run_dir), "--repo-id", OTHER_REPO], TOKEN),  # one file replaces the shards
        (["push", "--model", str(run_dir), "--repo-id", OTHER_REPO], TOKEN),  # nothing changed: no new commit
    ]
    # the repo is private: loading it by id needs the token too
    generate_argv = (["generate", "--model", REPO, "--prompt", PROMPT, "--max-new-tokens", "6", "--temperature", "0"], TOKEN)
    with LocalHub(tmp / "hub-storage", token=TOKEN) as hub:
        report = _client(hub, tmp, PUSH_SCRIPT, json.dumps([cases, pushes, generate_argv]))
        yield hub, report, run_dir, model, tmp


def test_bad_input_fails_clearly_before_any_request(pushed):
    hub, report, *_ = pushed
    expected = ["no Hugging Face token", "invalid repo id 'not a valid id!'", "expected 'namespace/name'",
                "no tokenizer", "no model weights", "safetensors only", "auto_map refers to modeling_foundry.py",
                "lists weight shards that are missing: model-00002-of-00002.safetensors", "no such folder"]
    for case, message in zip(report["bad"], expected, strict=True):
        assert case["rc"] == 2, case
        assert case["err"].startswith("lmfoundry: error: ") and message in case["err"], case["err"]
    # The server saw nothing from the bad cases: the first upload request is the good push's.
    uploads = [r for r in hub.requests if r[1] != "/api/agent-harnesses"]
    assert uploads[0] == ("POST", "/api/repos/create")
    assert not [r for r in hub.requests if "bad" in r[1]]
    assert set(hub.repos) == {REPO, OTHER_REPO}


def test_push_uploads_the_model_and_never_shows_the_token(pushed):
    hub, report, run_dir, *_ = pushed
    good, manual, refused, *_ = report["push"]
    assert good["rc"] == 0 and manual["rc"] == 0, report["push"]
    assert refused["rc"] == 2 and "the Hub refused the token for alice/tiny-foundry (HTTP 401)" in refused["err"]
    # stdout, stderr and DEBUG logs of every push, accepted or refused
    assert TOKEN not in report["all_output"] and WRONG_TOKEN not in report["all_output"]
    assert "/commit/" in good["out"]
    files = hub.files(REPO)
    assert set(files) == {
        ".gitattributes", "README.md", "config.json", "generation_config.json", "model.safetensors",
        "configuration_foundry.py", "modeling_foundry.py", "tokenizer.json", "tokenizer_config.json",
        "loss_curve.png",
    }  # no report.json, no .bin, nothing from the run folder besides the model and its card
    # the recipe names local paths (tests/test_hub_fixtures.py); no uploaded file does
    assert not [name for name, data in files.items() if str(run_dir.parent).encode() in data]
    assert files["model.safetensors"] == (run_dir / "model" / "model.safetensors").read_bytes()
    assert hub.repos[REPO].private
    card = files["README.md"].decode()
    assert f'from_pretrained("{REPO}", trust_remote_code=True)' in card and "| mmlu | acc | 0.25 |" in card
    # the second push went to a new branch, with the hand-written card kept as it was
    dev = hub.files(REPO, "dev")
    assert dev["README.md"] == b"# My own card\n"
    generation_config = json.loads(dev["generation_config.json"])  # written from config.json's token ids
    assert (generation_config["eos_token_id"], generation_config["pad_token_id"]) == (0, 1)
    assert hub.files(REPO)["README.md"] == files["README.md"]


def test_a_new_push_replaces_stale_shards_and_skips_unchanged_files(pushed):
    hub, report, *_ = pushed
    assert all(p["rc"] == 0 for p in report["push"][3:]), report["push"][3:]
    repo = hub.repos[OTHER_REPO]
    assert len(repo.commits) == 3  # the initial commit, the sharded push, the single-file push
    sharded = hub.files(OTHER_REPO, list(repo.commits)[1])
    assert "model.safetensors.index.json" in sharded and len([f for f in sharded if "-of-" in f]) == 2
    files = hub.files(OTHER_REPO)
    assert "model.safetensors" in files and not [f for f in files if "-of-" in f or f.endswith("index.json")]


def test_load_by_repo_id_without_lmfoundry(pushed):
    hub, _, _, model, tmp = pushed
    loaded = _client(hub, tmp, LOAD_SCRIPT, REPO, PROMPT, token=TOKEN)  # a private repo
    assert not loaded["lmfoundry_imported"]
    assert loaded["module"].startswith("transformers_modules")  # the repo's own modeling code
    assert loaded["eos"] == "<|endoftext|>"
    with torch.no_grad():
        expected = model(torch.tensor([loaded["ids"]])).logits[0, -1]
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, rtol=1e-4, atol=1e-5)
    assert loaded["text"].startswith(PROMPT)


def test_generate_by_repo_id(pushed):
    _, report, run_dir, *_ = pushed
    assert report["generate"]["rc"] == 0, report["generate"]["err"]
    model, tokenizer = load_model(str(run_dir))
    new_text = generate(model, tokenizer, PROMPT, SamplingSettings(max_new_tokens=6, temperature=0), io.StringIO())
    assert report["generate"]["out"] == PROMPT + new_text + "\n"


def test_dry_run_lists_the_upload_and_writes_the_card(tmp_path, capsys):
    from lmfoundry.cli import main

    build_run_folder(tmp_path / "run")
    assert main(["push", "--model", str(tmp_path / "run"), "--repo-id", REPO, "--dry-run"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == sorted([
        "README.md", "config.json", "configuration_foundry.py", "generation_config.json", "loss_curve.png",
        "model.safetensors", "modeling_foundry.py", "tokenizer.json", "tokenizer_config.json",
    ])  # report.json stays behind
    assert f'from_pretrained("{REPO}", trust_remote_code=True)' in (tmp_path / "run" / "model" / "README.md").read_text()


def test_recipe_hub_section(tmp_path):
    from lmfoundry.hub import HubConfig, push_to_hub
    from lmfoundry.recipe import parse_section

    assert parse_section(HubConfig, {"hub": {"private": "true"}}, "hub") == HubConfig(private=True)
    with pytest.raises(ValueError, match=r"recipe section 'hub': unknown field\(s\) repo"):
        parse_section(HubConfig, {"hub": {"repo": "alice/x"}}, "hub")
    with pytest.raises(ValueError, match="invalid repo id 'not valid'"):
        push_to_hub(tmp_path, HubConfig(repo_id="not valid"))
