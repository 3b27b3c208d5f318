"""The datatrove scheduler: tokenization as pipeline steps, so the shard stage scales out like curation.

- :class:`DocumentFiles` reads txt/md/jsonl(.gz)/parquet exactly as the local scheduler reads them
  (:func:`~lmfoundry.tokenization.sources.iter_documents`), each task taking every ``world_size``-th
  file; any other datatrove reader, or curation's own steps, can feed the tokenizer instead.
- :class:`TokenizeShards` encodes its task's documents with the shared core
  (:mod:`lmfoundry.data.shards.encoding`) into ``OUTPUT/.tokenize/{train,val}/<rank>_<shard>.ds``
  and then, last, lists them in ``.tokenize/tasks/<rank>.json``: a task without that record did not
  finish, and a rerun of it starts by deleting what it had written.
- :func:`merge_tasks` runs once every task is done: it checks that all ranks finished with the same
  tokenizer and settings, moves the shards into ``OUTPUT/{train,val}/`` and writes the same
  ``manifest.json`` as the local scheduler, last.

:func:`run_tasks` wires the three together on an executor (:func:`lmfoundry.data.executors.make_executor`,
as curation): the same manifest fields and the same documents' tokens per split as the local
scheduler; shards are named ``<rank>_<shard>.ds``. A rerun skips finished tasks (datatrove's
completion markers under ``OUTPUT/.tokenize/logs``); a change of tokenizer, inputs, settings or task
count starts the staging folder afresh. On Slurm it submits the job arrays and returns; run it again
once they finish to write the manifest.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.executors import make_executor, run_stages
from lmfoundry.data.shards.config import DEFAULT_SHARD_TOKENS
from lmfoundry.data.shards.encoding import (
    BATCH_CHARS,
    EncodeJob,
    SplitWriters,
    TokenizerIds,
    batches,
    open_encoder,
)
from lmfoundry.data.shards.folder import publish
from lmfoundry.data.shards.format import MANIFEST, SPLITS, read_manifest
from lmfoundry.tokenization.holdout import ValSplit, check_val_split
from lmfoundry.tokenization.sources import iter_documents, resolve_inputs

if TYPE_CHECKING:
    from lmfoundry.data.shards.job import ShardJob

logger = logging.getLogger(__name__)

STAGING = ".tokenize"
TASKS = "tasks"


class DocumentFiles(PipelineStep):
    """Reads documents from files and folders as the local scheduler does; task ``rank`` reads
    files ``rank``, ``rank + world_size``, ... (missing inputs fail here, naming the path)."""

    name = "📄 document files"
    type = "📖 - READER"

    def __init__(self, inputs: str | Path | Iterable[str | Path], text_field: str = "text"):
        super().__init__()
        self.files = resolve_inputs(inputs)
        self.text_field = text_field

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for path in self.files[rank::world_size]:
            for index, text in enumerate(iter_documents([path], self.text_field)):
                self.stat_update("documents")
                yield Document(text=text, id=f"{path}#{index}")


class TokenizeShards(PipelineStep):
    """Encodes a task's documents into its own shards under ``output_dir/.tokenize/``.

    The tokenizer is read when the step is built (a missing folder fails before any task starts);
    each task picks its encoder by the parity check on its own first documents. ``val_method`` is
    ``documents`` or ``tail`` (see :mod:`lmfoundry.tokenization.holdout`; ``auto`` needs the whole
    corpus, which one task does not see, so :func:`~lmfoundry.data.shards.tokenize_shards` resolves
    it first).
    """

    name = "🔢 token shards"
    type = "🔢 - TOKENIZER"

    def __init__(
        self,
        tokenizer_dir: str | Path,
        output_dir: str | Path,
        *,
        val_fraction: float = 0.01,
        val_method: str = "documents",
        shard_tokens: int = DEFAULT_SHARD_TOKENS,
    ):
        super().__init__()
        check_val_split(val_fraction, val_method)
        if val_method == "auto":
            raise ValueError("TokenizeShards: val_method 'auto' needs the whole corpus; pass documents or tail")
        self.ids = TokenizerIds.load(tokenizer_dir)
        self.staging = Path(output_dir) / STAGING
        self.val_split = ValSplit(val_fraction, val_method)
        self.shard_tokens = shard_tokens

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:
        prefix = f"{rank:05d}_"
        self._remove_task_output(rank, prefix)
        encoder, texts = open_encoder(self.ids.path, (document.text for document in data))
        job = EncodeJob(encoder, self.ids.eos_token_id, self.ids.dtype, self.val_split)
        writers = SplitWriters(self.staging, self.ids.dtype, self.shard_tokens, self.ids.path, prefix)
        try:
            for item in batches(texts, 0, BATCH_CHARS):
                with self.track_time(unit="batch"):
                    _, encoded = job(item)
                    writers.write(encoded)
                for split, (tokens, lengths, _) in zip(SPLITS, encoded):
                    self.stat_update(f"{split}_documents", value=len(lengths))
                    self.stat_update(f"{split}_tokens", value=len(tokens))
        except BaseException:
            writers.abort()
            raise
        task = {
            "rank": rank,
            "world_size": world_size,
            "encoder": encoder.backend,
            "settings": self._settings(),
            "shards": writers.close(),
        }
        write_json_atomic(self.staging / TASKS / f"{rank:05d}.json", task)

    def _settings(self) -> dict[str, Any]:
        """What every task of one run must agree on, and the manifest records."""
        return {
            **self.ids.manifest_fields(),
            "tokenizer_path": self.ids.path,
            "val_fraction": self.val_split.fraction,
            "val_method": self.val_split.method,
            "shard_tokens": self.shard_tokens,
        }

    def _remove_task_output(self, rank: int, prefix: str) -> None:
        """An earlier, interrupted attempt of this task: its record first, then its shards."""
        (self.staging / TASKS / f"{rank:05d}.json").unlink(missing_ok=True)
        for split in SPLITS:
            for file in (self.staging / split).glob(f"{prefix}*"):
                file.unlink()


def merge_tasks(
    output_dir: str | Path, inputs: str = "the pipeline's documents", **fields: Any
) -> dict[str, Any]:
    """Publish the finished tasks' shards in ``output_dir`` with ``manifest.json``; returns it.

    Every rank must have finished with the same tokenizer and settings; otherwise this raises,
    naming the missing ranks, and the folder stays incomplete. Once merged, calling it again
    returns the manifest. ``fields`` (``text_field``, ``sources``, ``val_reason``) are recorded in
    the manifest; ``inputs`` names the data in errors.
    """
    output_dir = Path(output_dir)
    staging = output_dir / STAGING
    records = sorted((staging / TASKS).glob("*.json"))
    if not records and (output_dir / MANIFEST).is_file():
        return read_manifest(output_dir)  # merged already: the rerun of a finished pipeline
    if not records:
        raise FileNotFoundError(f"{staging / TASKS}: no finished tokenization task; run the pipeline first")
    tasks = [json.loads(path.read_text(encoding="utf-8")) for path in records]
    first = tasks[0]
    if any(t["world_size"] != first["world_size"] or t["settings"] != first["settings"] for t in tasks):
        raise ValueError(
            f"{staging / TASKS}: tasks ran with different tokenizers, settings or task counts; "
            f"remove {staging} and run again"
        )
    missing = sorted(set(range(first["world_size"])) - {t["rank"] for t in tasks})
    if missing:
        raise RuntimeError(
            f"{staging / TASKS}: {len(missing)} of {first['world_size']} tokenization tasks have not finished "
            f"(ranks {', '.join(map(str, missing[:10]))}{', ...' if len(missing) > 10 else ''}); "
            "run the pipeline again (finished tasks are skipped)"
        )
    settings = dict(first["settings"])
    tokenizer = {
        "path": settings.pop("tokenizer_path"),
        "encoder": ",".join(sorted({t["encoder"] for t in tasks})),
    }
    shards = [record for task in tasks for record in task["shards"]]
    fields.setdefault("val_reason", "chosen in the settings")
    return publish(output_dir, staging, shards, inputs, **settings, tokenizer=tokenizer, **fields)


def run_tasks(job: ShardJob) -> dict[str, Any]:
    """Write ``job``'s shards as ``tasks`` datatrove tasks (``workers`` at once, locally) and merge them.

    Returns the manifest, or ``{"complete": False, "submitted": True, ...}`` when a cluster
    executor has queued the tasks.
    """
    config = job.config
    tasks = config.tasks or config.processes
    staging = job.output_dir / STAGING
    _reset_if_changed(
        staging, {"tokenizer_fingerprint": job.fingerprint, "sources": job.sources, **job.settings, "tasks": tasks}
    )
    split = job.val_split
    step = TokenizeShards(
        job.tokenizer_dir, job.output_dir, val_fraction=split.fraction, val_method=split.method,
        shard_tokens=config.shard_tokens,
    )
    logs = staging / "logs"
    runner = make_executor(
        config.executor or "local",
        [DocumentFiles(job.files, config.text_field), step],
        tasks=tasks,
        workers=config.processes,
        logging_dir=logs,
        options=config.executor_options,
        preload=(TokenizeShards.__module__,),
    )
    try:
        complete = run_stages(config.executor or "local", [("tokenize", runner)])
    except Exception as err:
        err.add_note(f"tokenization task logs: {logs}")
        raise
    if not complete:  # Slurm queued them
        logger.info("tasks submitted; rerun the same command once they finish to write the manifest")
        return {"complete": False, "submitted": True, "logging_dir": str(logs)}
    return merge_tasks(
        job.output_dir, job.inputs, text_field=config.text_field, val_reason=split.reason, sources=job.sources
    )


def _reset_if_changed(staging: Path, identity: dict[str, Any]) -> None:
    """Finished tasks of *this* job are kept for the rerun to skip; anything else is removed."""
    path = staging / "config.json"
    if path.is_file() and json.loads(path.read_text(encoding="utf-8")) == identity:
        logger.info("resuming the tokenization in %s (finished tasks are skipped)", staging)
        return
    if staging.exists():
        logger.info("removing the unfinished tokenization of other inputs or settings in %s", staging)
        shutil.rmtree(staging)
    write_json_atomic(path, identity)
