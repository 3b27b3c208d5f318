"""Token shards on disk: datatrove's tokenized layout plus our ``manifest.json``.

Each split folder (``train/``, ``val/``) holds shards named ``<part>_<shard>.ds`` (``00000_00000.ds``,
...; parts are the tokenizer's resumable units) in datatrove's format, so datatrove's
``DatatroveFolderDataset`` and nanotron read them as they are:

- ``*.ds``: the token ids, flat little-endian uint16 (vocabulary ≤ 65,536) or uint32, each
  document followed by ``<|endoftext|>``;
- ``*.ds.index``: little-endian uint64 end offset (in tokens, exclusive) of every document;
- ``*.ds.metadata``: ``<tokenizer>|<token bytes>``, the token count, and a readable count.

``manifest.json`` sits next to the split folders and is written last, atomically: a folder with a
manifest is complete. It records the tokenizer fingerprint, vocabulary size, dtype and EOS id, and
per shard its path, split, token/document/UTF-8-byte counts and sha256, so a reader can refuse shards
made with another tokenizer and detect truncated or corrupted files.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from lmfoundry.version import __version__

MANIFEST = "manifest.json"
FORMAT = "lmfoundry.shards/1"
SPLITS = ("train", "val")
TOKEN_DTYPES: dict[str, type[np.unsignedinteger]] = {"uint16": np.uint16, "uint32": np.uint32}


def dtype_for_vocab(vocab_size: int) -> str:
    """The smallest token dtype that holds every id of a ``vocab_size`` vocabulary."""
    return "uint16" if vocab_size <= 2**16 else "uint32"


class ShardWriter:
    """Appends one split's tokenized documents to consecutive shards of about ``shard_tokens`` tokens,
    named ``<prefix>00000.ds``, ``<prefix>00001.ds``, ...

    Documents are never split across shards; a shard is closed once it reaches ``shard_tokens``. The
    sha256 is computed while writing, so the tokens are never read back.
    """

    def __init__(
        self, folder: Path, split: str, dtype: str, shard_tokens: int, tokenizer_name: str, prefix: str = ""
    ):
        if shard_tokens < 1:
            raise ValueError(f"shard_tokens must be positive, got {shard_tokens}")
        self.folder = Path(folder)
        self.split = split
        self.dtype = np.dtype(TOKEN_DTYPES[dtype]).newbyteorder("<")
        self.shard_tokens = shard_tokens
        self.tokenizer_name = tokenizer_name
        self.prefix = prefix
        self.records: list[dict[str, Any]] = []
        self._file = None

    def write(self, tokens: np.ndarray, doc_lengths: np.ndarray, doc_bytes: np.ndarray) -> None:
        """Append documents: ``tokens`` is their concatenation, each ending with EOS."""
        ends = np.cumsum(doc_lengths, dtype=np.int64)
        first = 0
        while first < len(doc_lengths):
            if self._file is None:
                self._open()
            start = int(ends[first - 1]) if first else 0
            room = self.shard_tokens - self._tokens
            # take documents until the shard reaches shard_tokens (at least one document)
            last = max(first + 1, int(np.searchsorted(ends, start + room, side="left")) + 1)
            last = min(last, len(doc_lengths))
            end = int(ends[last - 1])
            chunk = np.ascontiguousarray(tokens[start:end], dtype=self.dtype)
            data = chunk.tobytes()
            self._file.write(data)
            self._sha.update(data)
            self._doc_ends.append(self._tokens + ends[first:last] - start)
            self._tokens += end - start
            self._documents += last - first
            self._bytes += int(doc_bytes[first:last].sum())
            first = last
            if self._tokens >= self.shard_tokens:
                self._close_shard()

    def close(self) -> list[dict[str, Any]]:
        """Finish the open shard and return one record per shard written."""
        if self._file is not None:
            self._close_shard()
        return self.records

    def abort(self) -> None:
        """Stop after a failure: close the open shard and delete every file this writer wrote."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self.records.append({"path": f"{self.split}/{self._name}"})
        for record in self.records:
            name = Path(record["path"]).name
            for suffix in ("", ".index", ".metadata"):
                (self.folder / (name + suffix)).unlink(missing_ok=True)
        self.records = []

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._name = f"{self.prefix}{len(self.records):05d}.ds"
        self._file = open(self.folder / self._name, "wb")  # noqa: SIM115
        self._sha = hashlib.sha256()
        self._doc_ends: list[np.ndarray] = []
        self._tokens = self._documents = self._bytes = 0

    def _close_shard(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        path = self.folder / self._name
        ends = np.concatenate(self._doc_ends).astype("<u8")
        _write_durably(path.with_name(self._name + ".index"), ends.tobytes())
        metadata = f"{self.tokenizer_name}|{self.dtype.itemsize}\n{self._tokens}\n{_humanize(self._tokens)}"
        _write_durably(path.with_name(self._name + ".metadata"), metadata.encode("utf-8"))
        self.records.append(
            {
                "path": f"{self.split}/{self._name}",
                "split": self.split,
                "tokens": int(self._tokens),
                "documents": int(self._documents),
                "bytes": int(self._bytes),
                "sha256": self._sha.hexdigest(),
            }
        )


def _write_durably(path: Path, data: bytes) -> None:
    """Write and fsync: a part recorded as finished must survive a power loss."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _humanize(tokens: int) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if tokens >= scale:
            return f"{tokens / scale:.1f} {unit}T"
    return f"{tokens} T"


def split_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of one split's shard records, with bytes per token (the bits-per-byte conversion)."""
    tokens = sum(r["tokens"] for r in records)
    n_bytes = sum(r["bytes"] for r in records)
    return {
        "shards": len(records),
        "tokens": tokens,
        "documents": sum(r["documents"] for r in records),
        "bytes": n_bytes,
        "bytes_per_token": n_bytes / tokens if tokens else 0.0,
    }


def make_manifest(
    records: list[dict[str, Any]],
    *,
    tokenizer_fingerprint: str,
    vocab_size: int,
    dtype: str,
    eos_token_id: int,
    **fields: Any,
) -> dict[str, Any]:
    """The manifest for ``records`` (all splits): identity, per-split totals, and the shard list.

    ``fields`` (tokenizer path, sources, settings, ...) are recorded as given."""
    summaries = {split: split_summary([r for r in records if r["split"] == split]) for split in SPLITS}
    return {
        "format": FORMAT,
        "lmfoundry_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tokenizer_fingerprint": tokenizer_fingerprint,
        "vocab_size": vocab_size,
        "dtype": dtype,
        "eos_token_id": eos_token_id,
        **fields,
        "splits": summaries,
        "bytes_per_token": {split: summaries[split]["bytes_per_token"] for split in SPLITS},
        "shards": records,
    }


def read_manifest(shards_dir: str | Path) -> dict[str, Any]:
    """Parse ``manifest.json``; a missing or malformed manifest is an error naming the file."""
    path = Path(shards_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: not a complete shards folder (run `lmfoundry data tokenize`)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from None
    missing = [
        k for k in ("format", "tokenizer_fingerprint", "vocab_size", "dtype", "shards") if k not in manifest
    ]
    if missing:
        raise ValueError(f"{path}: missing field(s) {', '.join(missing)}")
    if manifest["format"] != FORMAT:
        raise ValueError(f"{path}: format {manifest['format']!r}, expected {FORMAT!r}")
    if manifest["dtype"] not in TOKEN_DTYPES:
        raise ValueError(f"{path}: dtype {manifest['dtype']!r}, expected one of {', '.join(TOKEN_DTYPES)}")
    limit = np.iinfo(TOKEN_DTYPES[manifest["dtype"]]).max + 1
    if manifest["vocab_size"] > limit:
        raise ValueError(
            f"{path}: dtype {manifest['dtype']} cannot hold a vocabulary of {manifest['vocab_size']}"
        )
    return manifest


def check_shard_files(
    shards_dir: str | Path, records: list[dict[str, Any]], token_size: int, verify: bool
) -> None:
    """Each shard's size must match its token count (a truncated file is caught at open); with
    ``verify``, its sha256 must match too."""
    root = Path(shards_dir)
    for record in records:
        path = root / record["path"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shard listed in {root / MANIFEST} is missing")
        expected = record["tokens"] * token_size
        if path.stat().st_size != expected:
            raise ValueError(
                f"{path}: {path.stat().st_size} bytes, expected {expected} ({record['tokens']} tokens): "
                "truncated or overwritten shard"
            )
        if verify and sha256_file(path) != record["sha256"]:
            raise ValueError(f"{path}: sha256 does not match {root / MANIFEST}: the shard is corrupted")


def sha256_file(path: Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
