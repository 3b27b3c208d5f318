"""Compression report: how many UTF-8 bytes of text one token carries.

Bytes per token is the number that converts a model's loss into bits per byte (the
tokenizer-independent measure nanochat reports), and the first thing to compare between two
tokenizers trained with different vocabulary sizes or corpora.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from lmfoundry.atomic import write_json_atomic
from lmfoundry.tokenization.sources import PIECE_CHARS, split_long


def tokenizer_report(tokenizer: PreTrainedTokenizerBase, texts: Iterable[str]) -> dict:
    """Bytes per token (and characters per token) of ``tokenizer`` on ``texts``."""
    texts = list(texts)
    backend = tokenizer.backend_tokenizer
    n_tokens = 0
    # Batches of at most PIECE_CHARS characters (a longer text in whitespace-cut pieces), so memory stays bounded.
    batch: list[str] = []
    size = 0
    for piece in (p for text in texts for p in split_long(text)):
        batch.append(piece)
        size += len(piece)
        if size >= PIECE_CHARS or len(batch) == 256:
            n_tokens += sum(len(e.ids) for e in backend.encode_batch(batch, add_special_tokens=False))
            batch, size = [], 0
    if batch:
        n_tokens += sum(len(e.ids) for e in backend.encode_batch(batch, add_special_tokens=False))
    n_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    n_chars = sum(len(t) for t in texts)
    return {
        "vocab_size": len(tokenizer),
        "documents": len(texts),
        "bytes": n_bytes,
        "characters": n_chars,
        "tokens": n_tokens,
        "bytes_per_token": n_bytes / n_tokens if n_tokens else 0.0,
        "characters_per_token": n_chars / n_tokens if n_tokens else 0.0,
    }


def write_report(report: dict, path: str | Path) -> None:
    """Write ``report`` as indented JSON, atomically."""
    write_json_atomic(path, report)
