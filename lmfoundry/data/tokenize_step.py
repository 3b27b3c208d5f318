"""Tokenization as datatrove pipeline steps, so the shard stage scales out the way curation does.

- :class:`DocumentFiles` reads txt/md/jsonl(.gz)/parquet exactly as ``tokenize_corpus`` reads them
  (:func:`~lmfoundry.tokenization.sources.iter_documents`), each task taking every ``world_size``-th
  file; any other datatrove reader, or curation's own steps, can feed the tokenizer instead.
- :class:`TokenizeShards` encodes its task's documents with the steps ``tokenize_corpus`` uses
  (:mod:`lmfoundry.data.shard_encoding`) into ``OUTPUT/.tokenize/{train,val}/<rank>_<shard>.ds``
  and then, last, lists them in ``.tokenize/tasks/<rank>.json``: a task without that record did not
  finish, and a rerun of it starts by deleting what it had written.
- :func:`merge_tasks` runs once every task is done: it checks that all ranks finished with the same
  tokenizer and settings, moves the shards into ``OUTPUT/{train,val}/`` and writes the same
  ``manifest.json`` as ``tokenize_corpus``, last.

:func:`lmfoundry.data.tokenize_executor.tokenize_on_executor` wires the three together on an executor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.shard_encoding import (
    BATCH_CHARS,
    DEFAULT_SHARD_TOKENS,
    EncodeJob,
    SplitWriters,
    TokenizerIds,
    batches,
    check_val_fraction,
    open_encoder,
)
from lmfoundry.data.shards import MANIFEST, SPLITS, read_manifest
from lmfoundry.data.shards_folder import publish
from lmfoundry.tokenization.sources import iter_documents, resolve_inputs

logger = logging.getLogger(__name__)

STAGING = ".tokenize"
TASKS = "tasks"


class DocumentFiles(PipelineStep):
    """Reads documents from files and folders as ``tokenize_corpus`` does; task ``rank`` reads
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
    each task picks its encoder by the parity check on its own first documents.
    """

    name = "🔢 token shards"
    type = "🔢 - TOKENIZER"

    def __init__(
        self,
        tokenizer_dir: str | Path,
        output_dir: str | Path,
        *,
        val_fraction: float = 0.01,
        shard_tokens: int = DEFAULT_SHARD_TOKENS,
    ):
        super().__init__()
        check_val_fraction(val_fraction)
        self.ids = TokenizerIds.load(tokenizer_dir)
        self.staging = Path(output_dir) / STAGING
        self.val_fraction = val_fraction
        self.shard_tokens = shard_tokens

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:
        prefix = f"{rank:05d}_"
        self._remove_task_output(rank, prefix)
        encoder, texts = open_encoder(self.ids.path, (document.text for document in data))
        job = EncodeJob(encoder, self.ids.eos_token_id, self.ids.dtype, self.val_fraction)
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
            "val_fraction": self.val_fraction,
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
    returns the manifest. ``fields`` (``text_field``,
    ``sources``) are recorded in the manifest; ``inputs`` names the data in errors.
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
    return publish(output_dir, staging, shards, inputs, **settings, tokenizer=tokenizer, **fields)
