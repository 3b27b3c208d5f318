"""The one error boundary: each expected failure of each verb is one line naming the file, exit 2, no traceback.

Read-only folders and a full disk are real: small tmpfs mounts (root may write through chmod, so a mode bit would
prove nothing). Where this machine does not allow mounting, those cases skip and say so.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_hub_fixtures import build_tiny_model
from test_tokenizer_fixtures import make_corpus, make_tokenizer

from lmfoundry.cli import main


@contextmanager
def tmpfs(path: Path, *, size: str = "1m", read_only: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'}); needs root and mount rights")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def error_line(capsys) -> str:
    """The one error line on stderr (and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("lmfoundry: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("errors")
    good = root / "docs.jsonl"
    good.write_text("".join(json.dumps({"text": t}) + "\n" for t in make_corpus(n_docs=60)))
    truncated = root / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(good.read_bytes())[:-40])
    make_tokenizer(root / "tok", vocab_size=320)
    return {"root": root, "good": good, "truncated": truncated, "tok": root / "tok"}


@pytest.mark.parametrize("verb", [
    ["tokenizer", "train", "--vocab-size", "320"],
    ["data", "tokenize", "--workers", "1"],
])
def test_truncated_gzip_names_the_file(verb, docs, tmp_path, capsys):
    extra = ["--tokenizer", str(docs["tok"])] if verb[1] == "tokenize" else []
    assert main([*verb, *extra, "--input", str(docs["truncated"]), "--output", str(tmp_path / "out")]) == 2
    line = error_line(capsys)
    assert str(docs["truncated"]) in line and "truncated or corrupt gzip" in line


@pytest.mark.parametrize("verb", [
    ["data", "curate", "--data.progress", "false", "--workers", "1", "--tasks", "1"],
    ["tokenizer", "train", "--vocab-size", "320"],
    ["data", "tokenize", "--workers", "1"],
])
def test_read_only_output_folder_is_one_line(verb, docs, tmp_path, capsys):
    extra = ["--tokenizer", str(docs["tok"])] if verb[1] == "tokenize" else []
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        assert main([*verb, *extra, "--input", str(docs["good"]), "--output", str(ro / "out")]) == 2
        line = error_line(capsys)
    assert str(ro) in line and "read-only" in line


def test_full_disk_while_tokenizing_is_one_line(docs, tmp_path, capsys):
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps({"text": t}) + "\n" for t in make_corpus(n_docs=3000, seed=2)))
    with tmpfs(tmp_path / "small", size="64k") as small:
        code = main(["data", "tokenize", "--input", str(big), "--tokenizer", str(docs["tok"]),
                     "--output", str(small / "shards"), "--workers", "1"])
        line = error_line(capsys)
    assert code == 2 and "no space left on device" in line and str(small) in line


def test_eval_on_a_folder_without_weights_names_it(tmp_path, capsys):
    model_dir = tmp_path / "model"
    build_tiny_model(model_dir)
    (model_dir / "model.safetensors").unlink()
    assert main(["eval", "--model", str(model_dir), "--tasks", "bpb", "--bpb-data", str(model_dir),
                 "--output", str(tmp_path / "results.json")]) == 2
    assert str(model_dir) in error_line(capsys)


def test_unreachable_hub_in_push_is_one_line(tmp_path):
    model_dir = tmp_path / "model"
    build_tiny_model(model_dir)
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_unused", "HF_HUB_OFFLINE": "0",
           "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    result = subprocess.run([sys.executable, "-m", "lmfoundry", "push", "--model", str(model_dir),
                             "--repo-id", "alice/x"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("lmfoundry: error:")]
    assert len(lines) == 1 and "cannot reach the network or the Hugging Face Hub" in lines[0]


def test_debug_shows_the_traceback(docs, tmp_path, capsys):
    assert main(["--debug", "tokenizer", "train", "--input", str(docs["truncated"]), "--output",
                 str(tmp_path / "t"), "--vocab-size", "320"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "lmfoundry: error:" in err
