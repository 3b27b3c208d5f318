"""The one error boundary, beyond the bad-input matrix (tests/test_bad_input_matrix.py, where every verb meets
empty, missing, truncated, mistyped, locked, read-only and full-disk input): an unreachable network is one line
too, and --debug brings the traceback back."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

from test_hub_fixtures import build_tiny_model

from lmfoundry.cli import main


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


def test_debug_shows_the_traceback(tmp_path, capsys):
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(b'{"text": "a line of text"}\n' * 200)[:-40])
    assert main(["--debug", "tokenizer", "train", "--input", str(truncated), "--output",
                 str(tmp_path / "t"), "--vocab-size", "320"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "lmfoundry: error:" in err
