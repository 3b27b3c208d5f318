"""Shared test data for the tokenizer, shard and dataset tests (no tests here).

A small corpus that exercises what breaks tokenizers: several scripts, emoji (including ZWJ
sequences), code with tabs and whitespace runs, CRLF line ends, and the special-token text itself.
"""

from __future__ import annotations

import random
from pathlib import Path

from lmfoundry.tokenization import train_tokenizer

_PIECES = [
    "The quick brown fox jumps over the lazy dog. ",
    "Ünïcödé façade naïve café — “quotes” ",
    "数据集和语言模型训练。",
    "日本語のテキストです。",
    "Привет, мир! ",
    "مرحبا بالعالم ",
    "👩‍👩‍👧 🙂🚀 ",
    "def f(x):\n\treturn x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) {\r\n    sum += a[i];\r\n}\r\n",
    "    \n\n\n   ",
    "1234567 + 89 = 1234656\n",
    "they'll we've I'm it's ",
    "<|endoftext|>",
]


_SYLLABLES = [
    "ka",
    "to",
    "ri",
    "mon",
    "el",
    "sha",
    "qu",
    "ix",
    "数",
    "据",
    "на",
    "ть",
    "ün",
    "γα",
    "λο",
    "_",
    "0x",
]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))


def make_corpus(n_docs: int = 200, seed: int = 0) -> list[str]:
    """Deterministic documents mixing the pieces above with pseudo-words (so BPE has many merges to
    learn), 1-60 pieces each."""
    rng = random.Random(seed)
    return [
        "".join(
            rng.choice(_PIECES) if rng.random() < 0.3 else _word(rng) + rng.choice(" ,.\n")
            for _ in range(rng.randint(1, 60))
        )
        for _ in range(n_docs)
    ]


def make_tokenizer(output_dir: Path, vocab_size: int = 512, **kwargs):
    """Train a small tokenizer on :func:`make_corpus` (about a second)."""
    return train_tokenizer(make_corpus(), vocab_size, output_dir, show_progress=False, **kwargs)
