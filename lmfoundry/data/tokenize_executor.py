"""``tokenize_on_executor``: the shard stage as ``tasks`` datatrove tasks on any executor.

The same inputs, tokenizer and settings give the same manifest fields, the same documents' tokens
per split and the same folder layout as :func:`~lmfoundry.data.tokenize.tokenize_corpus`; what
changes is who does the work: :class:`~lmfoundry.data.tokenize_step.DocumentFiles` +
:class:`~lmfoundry.data.tokenize_step.TokenizeShards` on local processes, Slurm job arrays or Ray
(:func:`lmfoundry.data.executors.make_executor`, as curation), then
:func:`~lmfoundry.data.tokenize_step.merge_tasks` here. Shards are named ``<rank>_<shard>.ds``.

A rerun skips finished tasks (datatrove's completion markers under ``OUTPUT/.tokenize/logs``); a
change of tokenizer, inputs, settings or task count starts the staging folder afresh. On Slurm the
call submits the job arrays and returns; run it again once they finish to write the manifest.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.executors import make_executor
from lmfoundry.data.shard_encoding import DEFAULT_SHARD_TOKENS, check_val_fraction
from lmfoundry.data.shards import read_manifest
from lmfoundry.data.shards_folder import clear, complete_and_current, source_list
from lmfoundry.data.tokenize_step import STAGING, DocumentFiles, TokenizeShards, merge_tasks
from lmfoundry.tokenization.fingerprint import tokenizer_fingerprint

logger = logging.getLogger(__name__)


def tokenize_on_executor(
    inputs: str | Path | Iterable[str | Path],
    tokenizer_dir: str | Path,
    output_dir: str | Path,
    *,
    tasks: int = 1,
    workers: int = 1,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
    val_fraction: float = 0.01,
    text_field: str = "text",
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Tokenize ``inputs`` into ``output_dir`` as ``tasks`` tasks (``workers`` at once, locally).

    Returns the manifest, or ``{"complete": False, "submitted": True, ...}`` when a cluster
    executor has queued the tasks.
    """
    check_val_fraction(val_fraction)
    for name, value in (("tasks", tasks), ("workers", workers)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    reader = DocumentFiles(inputs, text_field)  # missing inputs fail here, naming the path
    output_dir = Path(output_dir)
    sources = source_list(reader.files)
    settings = {"val_fraction": val_fraction, "text_field": text_field, "shard_tokens": shard_tokens}
    fingerprint = tokenizer_fingerprint(tokenizer_dir)
    if complete_and_current(output_dir, fingerprint, sources, settings, overwrite):
        return read_manifest(output_dir)
    clear(output_dir)
    staging = output_dir / STAGING
    identity = {"tokenizer_fingerprint": fingerprint, "sources": sources, **settings, "tasks": tasks}
    _reset_if_changed(staging, identity)
    step = TokenizeShards(tokenizer_dir, output_dir, val_fraction=val_fraction, shard_tokens=shard_tokens)
    logs = staging / "logs"
    runner = make_executor(
        executor,
        [reader, step],
        tasks=tasks,
        workers=workers,
        logging_dir=logs,
        options=executor_options,
        preload=(TokenizeShards.__module__,),
    )
    try:
        runner.run()
    except Exception as err:
        err.add_note(f"tokenization task logs: {logs}")
        raise
    if runner.get_incomplete_ranks():  # a cluster executor queued them
        logger.info("tasks submitted; rerun the same command once they finish to write the manifest")
        return {"complete": False, "submitted": True, "logging_dir": str(logs)}
    inputs_named = ", ".join(str(p) for p in reader.files)
    return merge_tasks(output_dir, inputs_named, text_field=text_field, sources=sources)


def tokenize_shards(
    inputs: str | Path | Iterable[str | Path],
    tokenizer_dir: str | Path,
    output_dir: str | Path,
    *,
    tasks: int | None = None,
    executor: str | None = None,
    executor_options: dict[str, Any] | None = None,
    workers: int = 1,
    **settings: Any,
) -> dict[str, Any]:
    """The shard stage as ``lmfoundry data tokenize`` and ``lmfoundry run`` start it: one local job
    (:func:`~lmfoundry.data.tokenize.tokenize_corpus`) unless an executor setting is given, then
    :func:`tokenize_on_executor` with ``tasks`` defaulting to ``workers``. ``settings``: the
    remaining keyword arguments both take (``val_fraction``, ``text_field``, ...)."""
    if executor is None and tasks is None and not executor_options:
        from lmfoundry.data.tokenize import tokenize_corpus

        return tokenize_corpus(inputs, tokenizer_dir, output_dir, workers=workers, **settings)
    return tokenize_on_executor(
        inputs, tokenizer_dir, output_dir, tasks=tasks or workers, workers=workers,
        executor=executor or "local", executor_options=executor_options, **settings,
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
