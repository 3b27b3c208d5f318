"""Tokenize clean documents into train/val token shards (the stage between curation and training).

One local job: documents stream from the input files in the main process, are encoded in batches
by worker processes (the shared steps of :mod:`lmfoundry.data.shard_encoding`: tiktoken when it
reproduces the tokenizer, train/val by a hash of their text), and appended to shards. Output is
staged in ``OUTPUT/.partial/``, moved into place at the end, and the manifest is written last
(:func:`lmfoundry.data.shards_folder.publish`), so an interrupted run never leaves a folder that
looks complete. To spread the work over many machines, run the same encoding as datatrove tasks
(:mod:`lmfoundry.data.tokenize_executor`).

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
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.shard_encoding import (
    BATCH_CHARS,
    DEFAULT_SHARD_TOKENS,
    Encoded,
    EncodeJob,
    SplitWriters,
    TokenizerIds,
    batches,
    check_val_fraction,
    open_encoder,
)
from lmfoundry.data.shards import read_manifest
from lmfoundry.data.shards_folder import clear, complete_and_current, publish, source_list
from lmfoundry.tokenization.fingerprint import tokenizer_fingerprint
from lmfoundry.tokenization.sources import iter_documents, resolve_inputs

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT_BYTES = 1 << 30  # text per resumable part: a few shards' worth


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
    check_val_fraction(val_fraction)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if checkpoint_bytes < 1:
        raise ValueError(f"checkpoint_bytes must be positive, got {checkpoint_bytes}")
    files = resolve_inputs(inputs)
    output_dir = Path(output_dir)
    sources = source_list(files)
    settings = {"val_fraction": val_fraction, "text_field": text_field, "shard_tokens": shard_tokens}
    fingerprint = tokenizer_fingerprint(tokenizer_dir)
    if complete_and_current(output_dir, fingerprint, sources, settings, overwrite):
        return read_manifest(output_dir)
    clear(output_dir)

    ids = TokenizerIds.load(tokenizer_dir)
    encoder, documents = open_encoder(tokenizer_dir, iter_documents(files, text_field))
    staging = output_dir / ".partial"
    identity = {
        "tokenizer_fingerprint": fingerprint,
        "sources": sources,
        **settings,
        "checkpoint_bytes": checkpoint_bytes,
    }
    progress = _Progress.resume_or_reset(staging, identity)
    parts = _PartWriter(progress, ids.dtype, shard_tokens, ids.path, checkpoint_bytes)
    job = EncodeJob(encoder, ids.eos_token_id, ids.dtype, val_fraction)
    stream = itertools.islice(documents, progress.documents, None)
    batched = batches(stream, progress.documents, min(BATCH_CHARS, max(1, checkpoint_bytes // 8)))
    started = time.perf_counter()
    total_bytes = 0
    try:
        with tqdm(unit="B", unit_scale=True, desc="tokenize", disable=not show_progress) as bar:
            for consumed, encoded in _map(job, batched, workers):
                n_bytes = parts.write(consumed, encoded)
                total_bytes += n_bytes
                bar.update(n_bytes)
    except BaseException:
        parts.abort()
        raise
    manifest = publish(
        output_dir,
        staging,
        parts.finish(),
        ", ".join(map(str, files)),
        **ids.manifest_fields(),
        tokenizer={"path": ids.path, "encoder": encoder.backend},
        **settings,
        sources=sources,
    )
    elapsed = time.perf_counter() - started
    summaries = manifest["splits"]
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
    """Routes encoded batches to the current part's shard writers and, every ``checkpoint_bytes``
    of text, closes the part and records it in the progress file."""

    def __init__(
        self, progress: _Progress, dtype: str, shard_tokens: int, tokenizer_name: str, checkpoint_bytes: int
    ):
        self.progress = progress
        self.options = (dtype, shard_tokens, tokenizer_name)
        self.checkpoint_bytes = checkpoint_bytes
        self.part_bytes = 0
        self.writers = self._new_writers()

    def _new_writers(self) -> SplitWriters:
        return SplitWriters(self.progress.staging, *self.options, prefix=f"{len(self.progress.parts):05d}_")

    def write(self, consumed: int, encoded: Encoded) -> int:
        """Append one encoded batch; returns the UTF-8 bytes of text it held."""
        n_bytes = self.writers.write(encoded)
        self.part_bytes += n_bytes
        if self.part_bytes >= self.checkpoint_bytes:
            self.progress.add_part(consumed, self.writers.close())
            self.part_bytes = 0
            self.writers = self._new_writers()
        return n_bytes

    def finish(self) -> list[dict[str, Any]]:
        """Records of every shard: the finished parts' and the last part's."""
        return self.progress.records + self.writers.close()

    def abort(self) -> None:
        """Discard the unfinished part; finished ones stay for the next run to resume from."""
        self.writers.abort()
        if not self.progress.parts:
            shutil.rmtree(self.progress.staging, ignore_errors=True)


_worker_job: EncodeJob | None = None


def _init_worker(job: EncodeJob) -> None:
    global _worker_job
    _worker_job = job


def _run_worker_job(item: tuple[list[str], int]) -> Any:
    return _worker_job(item)


def _map(job: EncodeJob, items: Iterator[tuple[list[str], int]], workers: int) -> Iterator[Any]:
    """Apply ``job`` to each batch, in order, in ``workers`` processes (in-process when 1).

    At most ``2 * workers`` batches are in flight, so reading never runs ahead of encoding by more
    than a few megabytes (``Pool.imap`` would consume the whole input eagerly).
    """
    if workers == 1:
        yield from map(job, items)
        return
    # fork starts workers instantly (spawn would re-import torch/transformers in each); the job only
    # uses tiktoken/tokenizers, which are safe in a forked child.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    with multiprocessing.get_context(method).Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
        pending: collections.deque = collections.deque()
        for batch in items:
            pending.append(pool.apply_async(_run_worker_job, (batch,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
