"""Documents to per-split token shards: the encoding core both schedulers share.

The local scheduler (:mod:`lmfoundry.data.shards.local`, one job, resumable parts) and the datatrove
step (:mod:`lmfoundry.data.shards.steps`, one task per rank on any executor) differ only in how they
schedule the work; both cut documents into batches with :func:`batches`, encode them with
:class:`EncodeJob` (train/val text by a :class:`~lmfoundry.tokenization.holdout.ValSplit`, EOS after
every piece) using the encoder :func:`open_encoder` checked against the HF tokenizer, and append
them to a :class:`SplitWriters`. So both produce the same tokens for the same documents.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmfoundry.data.shards.format import SPLITS, ShardWriter, dtype_for_vocab
from lmfoundry.tokenization.fast_encoding import DocumentEncoder, choose_encoder
from lmfoundry.tokenization.fingerprint import tokenizer_fingerprint
from lmfoundry.tokenization.holdout import ValSplit

BATCH_CHARS = 1 << 20  # characters per encoding batch (at most): large enough to amortize pickling
PARITY_SAMPLE_CHARS = 1 << 18  # the tokenizers side of the check runs ~10x slower than tiktoken

# (tokens, tokens per document, UTF-8 bytes per document) for each split, in SPLITS order
Encoded = tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]


@dataclass(frozen=True)
class TokenizerIds:
    """What the shards and their manifest need from a tokenizer folder, read once up front."""

    path: str
    fingerprint: str
    vocab_size: int
    eos_token_id: int

    @classmethod
    def load(cls, tokenizer_dir: str | Path) -> TokenizerIds:
        """Read ``tokenizer_dir``; a missing folder or a tokenizer without EOS is an error naming it."""
        fingerprint = tokenizer_fingerprint(tokenizer_dir)  # FileNotFoundError naming tokenizer.json
        from transformers import AutoTokenizer  # heavy import, only once there is work to do

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        if tokenizer.eos_token_id is None:
            raise ValueError(f"{tokenizer_dir}: the tokenizer has no eos_token; documents need a separator")
        return cls(str(Path(tokenizer_dir)), fingerprint, len(tokenizer), tokenizer.eos_token_id)

    @property
    def dtype(self) -> str:
        return dtype_for_vocab(self.vocab_size)

    def manifest_fields(self) -> dict[str, Any]:
        """The manifest's tokenizer identity (the encoder backend is added by whoever chose it)."""
        return {
            "tokenizer_fingerprint": self.fingerprint,
            "vocab_size": self.vocab_size,
            "dtype": self.dtype,
            "eos_token_id": self.eos_token_id,
        }


def open_encoder(
    tokenizer_dir: str | Path, documents: Iterator[str]
) -> tuple[DocumentEncoder, Iterator[str]]:
    """The encoder for these documents, chosen by a parity check on their first few hundred kB of
    text; returns it with the document stream, sample included, ready to encode from the start."""
    sample = list(take_chars(documents, PARITY_SAMPLE_CHARS))
    # The check sees at most PARITY_SAMPLE_CHARS of any one document: `tokenizers` on a whole 50 MB
    # one-line document would take gigabytes; a prefix tests the same regex and merges.
    checked = [text[:PARITY_SAMPLE_CHARS] for text in sample]
    return choose_encoder(tokenizer_dir, checked), itertools.chain(sample, documents)


def take_chars(documents: Iterator[str], limit: int) -> Iterator[str]:
    """Take documents from the front of ``documents`` until about ``limit`` characters."""
    taken = 0
    for text in documents:
        yield text
        taken += len(text)
        if taken >= limit:
            return


def batches(documents: Iterable[str], start: int, chars: int) -> Iterator[tuple[list[str], int]]:
    """Batches of about ``chars`` characters, each with the number of input documents consumed once
    it is done (counting from ``start``, empty documents included)."""
    batch: list[str] = []
    size = 0
    consumed = start
    for text in documents:
        consumed += 1
        if not text:
            continue  # an empty document would only add a lone separator
        batch.append(text)
        size += len(text)
        if size >= chars:
            yield batch, consumed
            batch, size = [], 0
    if batch:
        yield batch, consumed


class EncodeJob:
    """Cut a batch's documents into train and val text (``val_split``), encode, append EOS.

    Returns the batch's document count and, per split, (concatenated tokens in the shard dtype,
    tokens per piece, UTF-8 bytes per piece), so the writer only appends arrays. A piece is a whole
    document, or with the ``tail`` method its head (train) or its tail (val). Picklable, so the
    local scheduler can run it in worker processes.
    """

    def __init__(self, encoder: DocumentEncoder, eos_id: int, dtype: str, val_split: ValSplit):
        self.encoder = encoder
        self.eos = np.array([eos_id], dtype=np.uint32)
        self.dtype = dtype
        self.val_split = val_split

    def __call__(self, item: tuple[list[str], int]) -> tuple[int, Encoded]:
        documents, consumed = item
        texts: list[str] = []
        flags: list[bool] = []
        for document in documents:
            for text, in_val in zip(self.val_split.parts(document), (False, True)):
                if text:
                    texts.append(text)
                    flags.append(in_val)
        ids = self.encoder.encode(texts)
        is_val = np.array(flags, dtype=bool)
        doc_bytes = np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)
        parts = []
        for selected in (~is_val, is_val):
            chosen = np.flatnonzero(selected)
            pieces = [piece for i in chosen for piece in (ids[i], self.eos)]
            tokens = np.concatenate(pieces).astype(self.dtype) if pieces else np.empty(0, self.dtype)
            lengths = np.array([len(ids[i]) + 1 for i in chosen], dtype=np.int64)
            parts.append((tokens, lengths, doc_bytes[chosen]))
        return consumed, tuple(parts)


class SplitWriters:
    """One :class:`ShardWriter` per split under ``folder/<split>/``, shards named ``<prefix>NNNNN.ds``."""

    def __init__(self, folder: Path, dtype: str, shard_tokens: int, tokenizer_name: str, prefix: str):
        self.writers = {
            split: ShardWriter(folder / split, split, dtype, shard_tokens, tokenizer_name, prefix)
            for split in SPLITS
        }

    def write(self, encoded: Encoded) -> int:
        """Append one encoded batch; returns the UTF-8 bytes of text it held."""
        n_bytes = 0
        for split, (tokens, lengths, doc_bytes) in zip(SPLITS, encoded):
            if len(lengths):
                self.writers[split].write(tokens, lengths, doc_bytes)
                n_bytes += int(doc_bytes.sum())
        return n_bytes

    def close(self) -> list[dict[str, Any]]:
        """Finish the open shards; one record per shard written, all splits."""
        return [record for writer in self.writers.values() for record in writer.close()]

    def abort(self) -> None:
        """Delete every file these writers wrote (after a failure)."""
        for writer in self.writers.values():
            writer.abort()
