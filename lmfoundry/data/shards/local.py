"""The local scheduler: one job on this machine, parallel within a file, resumable by parts.

Documents stream from the input files in the main process, are encoded in batches by ``workers``
processes (the shared core, :mod:`lmfoundry.data.shards.encoding`), and appended to shards in
input order. Output is staged in ``OUTPUT/.partial/``, moved into place at the end, and the
manifest is written last (:func:`lmfoundry.data.shards.folder.publish`).

The document stream is cut into *parts* of about ``checkpoint_bytes`` of text (shards
``<part>_<shard>.ds``, like datatrove's ``<rank>_...`` names). When a part is done its shard records
and the number of documents consumed go to ``.partial/progress.json``; a rerun with the same
tokenizer, inputs and settings keeps the finished parts, skips their documents without encoding
them, and produces exactly the shards an uninterrupted run would. Anything else restarts from
scratch.

Why this scheduler exists next to datatrove's ``LocalPipelineExecutor`` running
:class:`~lmfoundry.data.shards.steps.TokenizeShards` (``python benchmarks/tokenize_speed.py
--schedulers``): a datatrove task is the unit of parallelism and reads whole files, so on one input
file (one jsonl, or a book as one txt) the executor runs one process however many workers it has;
with N tasks over several files it writes other shards (documents grouped by task, not in input
order; the same documents per split). Only one task reproduces this scheduler's shards bitwise, and
one task is one process. This scheduler spreads the batches of any file over ``workers`` processes,
keeps input order, and resumes inside a file. ``benchmarks/tokenize_speed.py --schedulers``
measures both on one file and on four (the numbers are in the README's shards section, not here,
so they do not go stale): with one process each the two are comparable; on one file with several
workers this scheduler is the faster by the parallelism the executor cannot use.
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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.shards.encoding import (
    BATCH_CHARS,
    Encoded,
    EncodeJob,
    SplitWriters,
    TokenizerIds,
    batches,
    open_encoder,
)
from lmfoundry.data.shards.folder import publish
from lmfoundry.tokenization.sources import iter_documents

if TYPE_CHECKING:
    from lmfoundry.data.shards.job import ShardJob

logger = logging.getLogger(__name__)


def run_local(job: ShardJob, *, show_progress: bool = True) -> dict[str, Any]:
    """Write ``job``'s shards with ``job.config.processes`` encoding processes; returns the manifest."""
    config = job.config
    ids = TokenizerIds.load(job.tokenizer_dir)
    encoder, documents = open_encoder(job.tokenizer_dir, iter_documents(job.files, config.text_field))
    staging = job.output_dir / ".partial"
    identity = {
        "tokenizer_fingerprint": job.fingerprint,
        "sources": job.sources,
        **job.settings,
        "checkpoint_bytes": config.checkpoint_bytes,
    }
    progress = _Progress.resume_or_reset(staging, identity)
    parts = _PartWriter(progress, ids.dtype, config.shard_tokens, ids.path, config.checkpoint_bytes)
    encode = EncodeJob(encoder, ids.eos_token_id, ids.dtype, job.val_split)
    stream = itertools.islice(documents, progress.documents, None)
    batched = batches(stream, progress.documents, min(BATCH_CHARS, max(1, config.checkpoint_bytes // 8)))
    started = time.perf_counter()
    total_bytes = 0
    try:
        with tqdm(unit="B", unit_scale=True, desc="tokenize", disable=not show_progress) as bar:
            for consumed, encoded in _map(encode, batched, config.processes):
                n_bytes = parts.write(consumed, encoded)
                total_bytes += n_bytes
                bar.update(n_bytes)
    except BaseException:
        parts.abort()
        raise
    manifest = publish(
        job.output_dir,
        staging,
        parts.finish(),
        job.inputs,
        **ids.manifest_fields(),
        tokenizer={"path": ids.path, "encoder": encoder.backend},
        **job.settings,
        val_reason=job.val_split.reason,
        sources=job.sources,
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
