"""Tokenize clean documents into train/val token shards (the stage between curation and training).

Documents stream from the input files in the main process, are encoded in batches by worker
processes (tiktoken when it reproduces the tokenizer, see :mod:`lmfoundry.tokenization.fast_encoding`),
split into train/val by a hash of their text, and appended to :class:`~lmfoundry.data.shards.ShardWriter`
shards. Output is staged in ``OUTPUT/.partial/``, moved into place at the end, and the manifest is
written last, so an interrupted run never leaves a folder that looks complete.

The document stream is cut into *parts* of about ``checkpoint_bytes`` of text (shards
``<part>_<shard>.ds``, like datatrove's ``<rank>_...`` names). When a part is done its shard records
and the number of documents consumed go to ``.partial/progress.json``; a rerun with the same
tokenizer, inputs and settings keeps the finished parts, skips their documents without encoding
them, and produces exactly the shards an uninterrupted run would. Anything else restarts from
scratch. A run on a complete folder made from the same tokenizer and inputs is a no-op.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.shards import (
    MANIFEST,
    SPLITS,
    ShardWriter,
    dtype_for_vocab,
    make_manifest,
    read_manifest,
)
from lmfoundry.tokenization.fast_encoding import DocumentEncoder, choose_encoder
from lmfoundry.tokenization.fingerprint import tokenizer_fingerprint
from lmfoundry.tokenization.sources import is_validation, iter_documents, resolve_inputs

logger = logging.getLogger(__name__)

DEFAULT_SHARD_TOKENS = 100_000_000
DEFAULT_CHECKPOINT_BYTES = 1 << 30  # text per resumable part: a few shards' worth
_BATCH_CHARS = 1 << 20  # characters per worker task (at most): large enough to amortize pickling
_PARITY_SAMPLE_CHARS = 1 << 18  # the tokenizers side of the check runs ~10x slower than tiktoken


def tokenize_corpus(
    inputs: str | Path | Iterable[str | Path],
    tokenizer_dir: str | Path,
    output_dir: str | Path,
    *,
    val_fraction: float = 0.01,
    text_field: str = "text",
    workers: int = 1,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES,
    overwrite: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Tokenize documents from ``inputs`` (files or folders) into shards in ``output_dir``.

    Returns the manifest. ``workers`` processes encode in parallel (the main process reads and
    writes); an interrupted run resumes from its last finished part of ``checkpoint_bytes`` of text.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if checkpoint_bytes < 1:
        raise ValueError(f"checkpoint_bytes must be positive, got {checkpoint_bytes}")
    files = resolve_inputs(inputs)
    tokenizer_dir = Path(tokenizer_dir)
    fingerprint = tokenizer_fingerprint(tokenizer_dir)
    output_dir = Path(output_dir)
    sources = [{"path": str(p), "bytes": p.stat().st_size} for p in files]
    settings = {"val_fraction": val_fraction, "text_field": text_field, "shard_tokens": shard_tokens}
    if _complete_and_current(output_dir, fingerprint, sources, settings, overwrite):
        return read_manifest(output_dir)
    _clear(output_dir)

    from transformers import AutoTokenizer  # heavy import, only when there is work to do

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    vocab_size, eos_id = len(tokenizer), tokenizer.eos_token_id
    if eos_id is None:
        raise ValueError(f"{tokenizer_dir}: the tokenizer has no eos_token; documents need a separator")
    dtype = dtype_for_vocab(vocab_size)

    documents = iter_documents(files, text_field)
    sample = list(_take_chars(documents, _PARITY_SAMPLE_CHARS))
    encoder = choose_encoder(tokenizer_dir, sample)
    documents = itertools.chain(sample, documents)

    staging = output_dir / ".partial"
    identity = {
        "tokenizer_fingerprint": fingerprint,
        "sources": sources,
        **settings,
        "checkpoint_bytes": checkpoint_bytes,
    }
    progress = _Progress.resume_or_reset(staging, identity)
    parts = _PartWriter(progress, dtype, shard_tokens, str(tokenizer_dir), checkpoint_bytes)
    job = _EncodeJob(encoder, eos_id, dtype, val_fraction)
    stream = itertools.islice(documents, progress.documents, None)
    batches = _batches(stream, progress.documents, min(_BATCH_CHARS, max(1, checkpoint_bytes // 8)))
    started = time.perf_counter()
    total_bytes = 0
    try:
        with tqdm(unit="B", unit_scale=True, desc="tokenize", disable=not show_progress) as bar:
            for consumed, encoded in _map(job, batches, workers):
                n_bytes = parts.write(consumed, encoded)
                total_bytes += n_bytes
                bar.update(n_bytes)
    except BaseException:
        parts.abort()
        raise
    records = parts.finish()
    elapsed = time.perf_counter() - started

    manifest = make_manifest(
        sorted(records, key=lambda r: (SPLITS.index(r["split"]), r["path"])),
        tokenizer_fingerprint=fingerprint,
        vocab_size=vocab_size,
        dtype=dtype,
        eos_token_id=eos_id,
        tokenizer={"path": str(tokenizer_dir), "encoder": encoder.backend},
        **settings,
        sources=sources,
    )
    summaries = manifest["splits"]
    if summaries["train"]["documents"] == 0:
        shutil.rmtree(staging)
        raise ValueError(f"no training documents in {', '.join(map(str, files))} (all empty or all in val)")
    if val_fraction > 0 and summaries["val"]["documents"] == 0:
        logger.warning(
            "val_fraction=%g put no document in val (%d documents in all): raise it for a validation split",
            val_fraction,
            summaries["train"]["documents"],
        )
    for split in SPLITS:
        if (staging / split).is_dir():
            os.replace(staging / split, output_dir / split)
    shutil.rmtree(staging)
    write_json_atomic(output_dir / MANIFEST, manifest)
    tokens = summaries["train"]["tokens"] + summaries["val"]["tokens"]
    logger.info(
        "tokenized %d documents into %d tokens (%d train, %d val) in %.1fs: %.0f tokens/s, %.2f MB/s (%s)",
        summaries["train"]["documents"] + summaries["val"]["documents"],
        tokens,
        summaries["train"]["tokens"],
        summaries["val"]["tokens"],
        elapsed,
        tokens / max(elapsed, 1e-9),
        total_bytes / 1e6 / max(elapsed, 1e-9),
        encoder.backend,
    )
    return manifest


def _complete_and_current(
    output_dir: Path, fingerprint: str, sources: list[dict], settings: dict, overwrite: bool
) -> bool:
    """True when ``output_dir`` already holds exactly what this call would write (so: nothing to do)."""
    if not (output_dir / MANIFEST).is_file():
        return False
    old = read_manifest(output_dir)
    same_tokenizer = old["tokenizer_fingerprint"] == fingerprint
    same_inputs = old.get("sources") == sources and all(old.get(k) == v for k, v in settings.items())
    if same_tokenizer and same_inputs and not overwrite:
        logger.info("%s is complete for this tokenizer and these inputs; nothing to do", output_dir)
        return True
    if not overwrite:
        what = "a different tokenizer" if not same_tokenizer else "different inputs or settings"
        raise FileExistsError(
            f"{output_dir / MANIFEST}: shards were made with {what}; pass --overwrite to replace them"
        )
    return False


def _clear(output_dir: Path) -> None:
    """Remove finished output (the manifest first, so the folder stops looking complete); a partial
    run in ``.partial/`` is left to :class:`_Progress`."""
    manifest = output_dir / MANIFEST
    if manifest.exists():
        logger.info("replacing the shards in %s", output_dir)
        manifest.unlink()
        shutil.rmtree(output_dir / ".partial", ignore_errors=True)
    for split in SPLITS:
        if (output_dir / split).exists():
            shutil.rmtree(output_dir / split)
    output_dir.mkdir(parents=True, exist_ok=True)


class _Progress:
    """The finished parts of a run (``.partial/progress.json``) and the documents they consumed."""

    FILE = "progress.json"

    def __init__(self, staging: Path, identity: dict[str, Any], parts: list[dict[str, Any]]):
        self.staging = staging
        self.identity = identity
        self.parts = parts

    @classmethod
    def resume_or_reset(cls, staging: Path, identity: dict[str, Any]) -> _Progress:
        """Keep the finished parts of an interrupted run of this same job; otherwise start afresh."""
        path = staging / cls.FILE
        saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        if saved is None or saved.get("identity") != identity:
            if staging.exists():
                logger.info("removing partial output of an interrupted run in %s", staging)
                shutil.rmtree(staging)
            staging.mkdir(parents=True)
            return cls(staging, identity, [])
        progress = cls(staging, identity, saved["parts"])
        keep = {r["path"] for r in progress.records}
        for file in staging.glob("*/*"):
            shard = f"{file.parent.name}/{file.name.split('.ds')[0]}.ds"
            if shard not in keep:
                file.unlink()  # from the part that was interrupted
        logger.info(
            "resuming: %d finished part(s), skipping their %d documents",
            len(progress.parts),
            progress.documents,
        )
        return progress

    @property
    def documents(self) -> int:
        """Input documents (counting empty ones) consumed by the finished parts."""
        return self.parts[-1]["documents"] if self.parts else 0

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for part in self.parts for record in part["records"]]

    def add_part(self, documents: int, records: list[dict[str, Any]]) -> None:
        self.parts.append({"documents": documents, "records": records})
        write_json_atomic(self.staging / self.FILE, {"identity": self.identity, "parts": self.parts})


class _PartWriter:
    """Routes encoded batches to the current part's shard writers (one per split) and, every
    ``checkpoint_bytes`` of text, closes the part and records it in the progress file."""

    def __init__(
        self, progress: _Progress, dtype: str, shard_tokens: int, tokenizer_name: str, checkpoint_bytes: int
    ):
        self.progress = progress
        self.options = (dtype, shard_tokens, tokenizer_name)
        self.checkpoint_bytes = checkpoint_bytes
        self.part_bytes = 0
        self.writers = self._new_writers()

    def _new_writers(self) -> dict[str, ShardWriter]:
        prefix = f"{len(self.progress.parts):05d}_"
        staging = self.progress.staging
        return {split: ShardWriter(staging / split, split, *self.options, prefix) for split in SPLITS}

    def write(self, consumed: int, encoded: tuple[tuple[np.ndarray, ...], ...]) -> int:
        """Append one encoded batch; returns the UTF-8 bytes of text it held."""
        n_bytes = 0
        for split, (tokens, lengths, doc_bytes) in zip(SPLITS, encoded):
            if len(lengths):
                self.writers[split].write(tokens, lengths, doc_bytes)
                n_bytes += int(doc_bytes.sum())
        self.part_bytes += n_bytes
        if self.part_bytes >= self.checkpoint_bytes:
            self.progress.add_part(consumed, self._close())
            self.part_bytes = 0
            self.writers = self._new_writers()
        return n_bytes

    def finish(self) -> list[dict[str, Any]]:
        """Records of every shard: the finished parts' and the last part's."""
        return self.progress.records + self._close()

    def abort(self) -> None:
        """Discard the unfinished part; finished ones stay for the next run to resume from."""
        for writer in self.writers.values():
            writer.abort()
        if not self.progress.parts:
            shutil.rmtree(self.progress.staging, ignore_errors=True)

    def _close(self) -> list[dict[str, Any]]:
        return [record for writer in self.writers.values() for record in writer.close()]


def _take_chars(documents: Iterator[str], limit: int) -> Iterator[str]:
    """Take documents from the front of ``documents`` until about ``limit`` characters."""
    taken = 0
    for text in documents:
        yield text
        taken += len(text)
        if taken >= limit:
            return


def _batches(documents: Iterable[str], start: int, chars: int) -> Iterator[tuple[list[str], int]]:
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


class _EncodeJob:
    """One worker task: encode a batch, append EOS, and split it into train and val parts.

    Returns the batch's document count and, per split, (concatenated tokens in the shard dtype,
    tokens per document, UTF-8 bytes per document), so the main process only appends arrays.
    """

    def __init__(self, encoder: DocumentEncoder, eos_id: int, dtype: str, val_fraction: float):
        self.encoder = encoder
        self.eos = np.array([eos_id], dtype=np.uint32)
        self.dtype = dtype
        self.val_fraction = val_fraction

    def __call__(self, item: tuple[list[str], int]) -> tuple[int, tuple[tuple[np.ndarray, ...], ...]]:
        texts, consumed = item
        ids = self.encoder.encode(texts)
        is_val = np.array([is_validation(t, self.val_fraction) for t in texts], dtype=bool)
        doc_bytes = np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)
        parts = []
        for selected in (~is_val, is_val):
            chosen = np.flatnonzero(selected)
            pieces = [piece for i in chosen for piece in (ids[i], self.eos)]
            tokens = np.concatenate(pieces).astype(self.dtype) if pieces else np.empty(0, self.dtype)
            lengths = np.array([len(ids[i]) + 1 for i in chosen], dtype=np.int64)
            parts.append((tokens, lengths, doc_bytes[chosen]))
        return consumed, tuple(parts)


_worker_job: _EncodeJob | None = None


def _init_worker(job: _EncodeJob) -> None:
    global _worker_job
    _worker_job = job


def _run_worker_job(item: tuple[list[str], int]) -> Any:
    return _worker_job(item)


def _map(job: _EncodeJob, batches: Iterator[tuple[list[str], int]], workers: int) -> Iterator[Any]:
    """Apply ``job`` to each batch, in order, in ``workers`` processes (in-process when 1).

    At most ``2 * workers`` batches are in flight, so reading never runs ahead of encoding by more
    than a few megabytes (``Pool.imap`` would consume the whole input eagerly).
    """
    if workers == 1:
        yield from map(job, batches)
        return
    # fork starts workers instantly (spawn would re-import torch/transformers in each); the job only
    # uses tiktoken/tokenizers, which are safe in a forked child.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    with multiprocessing.get_context(method).Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
        pending: collections.deque = collections.deque()
        for batch in batches:
            pending.append(pool.apply_async(_run_worker_job, (batch,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
