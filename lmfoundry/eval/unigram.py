"""A unigram baseline for bits per byte: the floor a trained model must clearly beat.

The baseline predicts every token from its frequency in the training shards (add-one smoothed)
and ignores context. Its cross-entropy on the validation shards, converted with the same UTF-8
byte counts the model's bits per byte uses, says how much the model learned beyond token
frequencies: a model near the baseline has learned nothing about context.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmfoundry.data.shards import TOKEN_DTYPES, read_manifest

CHUNK_TOKENS = 1 << 24  # read shards in 16M-token slices: memory stays flat on any corpus


def _shard_chunks(path: Path, dtype: type[np.unsignedinteger]):
    tokens = np.memmap(path, dtype=dtype, mode="r")
    for start in range(0, len(tokens), CHUNK_TOKENS):
        yield np.asarray(tokens[start : start + CHUNK_TOKENS])


def unigram_bits_per_byte(
    shards_dir: str | Path, train_split: str = "train", eval_split: str = "val"
) -> float:
    """Bits per UTF-8 byte of ``eval_split`` under a unigram model fitted on ``train_split``."""
    root = Path(shards_dir)
    manifest = read_manifest(root)
    dtype = TOKEN_DTYPES[manifest["dtype"]]
    vocab = manifest["vocab_size"]
    counts = np.ones(vocab, dtype=np.float64)
    for record in manifest["shards"]:
        if record["split"] == train_split:
            for chunk in _shard_chunks(root / record["path"], dtype):
                counts += np.bincount(chunk, minlength=vocab)[:vocab]
    log2_probs = np.log2(counts / counts.sum())
    total_bits = 0.0
    total_bytes = 0
    for record in manifest["shards"]:
        if record["split"] == eval_split:
            total_bytes += record["bytes"]
            for chunk in _shard_chunks(root / record["path"], dtype):
                total_bits -= float(log2_probs[chunk].sum())
    if total_bytes == 0:
        raise ValueError(f"{root}: the {eval_split!r} split is empty; cannot compute a unigram baseline")
    return total_bits / total_bytes
