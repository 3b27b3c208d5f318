"""A one-line document of many megabytes costs bounded memory: the tokenizer trainer gets it in pieces cut at
whitespace, the shard stage's parity check sees only its prefix (tiktoken then streams it)."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from test_tokenizer_fixtures import make_tokenizer

# An 8 MB line: before the bounds, `tokenizers` took ~200 bytes per character on it (1.6 GB here,
# 7.8-10 GB on a 50 MB line).
LINE_CHARS = 8_000_000
BOUND_MB = 700


@pytest.fixture(scope="module")
def one_line(tmp_path_factory):
    root = tmp_path_factory.mktemp("oneline")
    rng = random.Random(0)
    words = [f"w{i}" for i in range(400)]
    text = " ".join(rng.choice(words) for _ in range(LINE_CHARS // 4))
    (root / "one.txt").write_text(text[:LINE_CHARS])
    make_tokenizer(root / "tok", vocab_size=320)
    return root


# The verb in a fresh process that prints its own peak resident memory: VmHWM, which exec resets (ru_maxrss
# would start at the forking pytest process's size: Linux keeps it across exec). Its workers count too.
MEASURE = """
import re, resource, sys
from lmfoundry.cli import main
code = main(sys.argv[1:])
own = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(f"PEAK_KB {max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)}")
sys.exit(code)
"""


def peak_mb_of(argv: list[str]) -> float:
    result = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.rsplit("PEAK_KB ", 1)[1]) / 1024


def test_tokenizing_a_one_line_document_stays_bounded(one_line):
    peak = peak_mb_of(["data", "tokenize", "--input", str(one_line / "one.txt"), "--tokenizer",
                       str(one_line / "tok"), "--output", str(one_line / "shards"), "--workers", "1"])
    assert peak < BOUND_MB, f"peak {peak:.0f} MB"


def test_training_a_tokenizer_on_a_one_line_document_stays_bounded(one_line):
    peak = peak_mb_of(["tokenizer", "train", "--input", str(one_line / "one.txt"), "--output",
                       str(one_line / "tok2"), "--vocab-size", "320", "--tokenize.val_method", "documents"])
    assert peak < BOUND_MB, f"peak {peak:.0f} MB"
