"""A unigram baseline for bits per byte: the floor a trained model must clearly beat.

The baseline predicts every token from its frequency in the training shards (add-one smoothed)
and ignores context. Its cross-entropy on the validation shards, converted with the same UTF-8
byte counts the model's bits per byte uses, says how much the model learned beyond token
frequencies: a model near the baseline has learned nothing about context.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lmfoundry.data.shards import read_manifest
from lmfoundry.eval.tasks.bpb import shard_tokens

CHUNK_TOKENS = 1 << 24  # read shards in 16M-token slices: memory stays flat on any corpus


def _chunks(arrays: list[np.ndarray]) -> Iterator[np.ndarray]:
    for tokens in arrays:
        for start in range(0, len(tokens), CHUNK_TOKENS):
            yield np.asarray(tokens[start : start + CHUNK_TOKENS])


def unigram_bits_per_byte(shards_dir: str | Path, train_split: str = "train", eval_split: str = "val") -> float:
    """Bits per UTF-8 byte of ``eval_split`` under a unigram model fitted on ``train_split``."""
    root = Path(shards_dir)
    manifest = read_manifest(root)
    if not any(r["split"] == eval_split and r["tokens"] for r in manifest["shards"]):
        raise ValueError(f"{root}: the {eval_split!r} split is empty; cannot compute a unigram baseline")
    vocab = manifest["vocab_size"]
    train, _ = shard_tokens(root, train_split)  # checks every shard's size against the manifest
    counts = np.ones(vocab, dtype=np.float64)
    for chunk in _chunks(train):
        counts += np.bincount(chunk, minlength=vocab)[:vocab]
    log2_probs = np.log2(counts / counts.sum())
    held_out, bytes_per_token = shard_tokens(root, eval_split)
    total_bits = -sum(float(log2_probs[chunk].sum()) for chunk in _chunks(held_out))
    total_tokens = sum(len(tokens) for tokens in held_out)
    return total_bits / (total_tokens * bytes_per_token)
