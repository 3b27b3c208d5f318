"""``tokenize_shards``: the one entry point of the shard stage, for both schedulers.

The common preamble lives here, once: resolve the inputs, choose the validation split
(:func:`~lmfoundry.tokenization.holdout.val_split_for`, the same choice the tokenizer made), read
the tokenizer's fingerprint, return the manifest of a folder that is already complete for these
inputs and settings (or refuse one made otherwise, unless ``overwrite``).
Then a :class:`ShardJob` goes to one scheduler:

- the local job (:func:`lmfoundry.data.shards.local.run_local`), by default;
- datatrove tasks (:func:`lmfoundry.data.shards.steps.run_tasks`) when ``tasks``, ``executor`` or
  ``executor_options`` is set.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lmfoundry.data.shards.config import TokenizeConfig
from lmfoundry.data.shards.folder import complete_and_current, source_list
from lmfoundry.data.shards.format import read_manifest
from lmfoundry.data.shards.job import ShardJob
from lmfoundry.locks import output_lock
from lmfoundry.tokenization.fingerprint import tokenizer_fingerprint
from lmfoundry.tokenization.holdout import val_split_for
from lmfoundry.tokenization.sources import resolve_inputs


def tokenize_shards(
    config: TokenizeConfig,
    inputs: str | Path | Iterable[str | Path],
    tokenizer_dir: str | Path,
    output_dir: str | Path,
    *,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Tokenize documents from ``inputs`` (txt/md/jsonl(.gz)/parquet files or folders) with the
    tokenizer in ``tokenizer_dir`` into ``output_dir`` (train/val shards + ``manifest.json``).

    Returns the manifest, or ``{"complete": False, "submitted": True, "logging_dir": ...}`` when a
    cluster executor has queued the tasks (run it again once they finish to write the manifest).
    ``output_dir`` is locked while it runs (:func:`lmfoundry.locks.output_lock`).
    """
    with output_lock(output_dir, "tokenize_shards"):
        return _tokenize_shards(config, inputs, tokenizer_dir, output_dir, show_progress=show_progress)


def _tokenize_shards(config: TokenizeConfig, inputs: str | Path | Iterable[str | Path], tokenizer_dir: str | Path,
                     output_dir: str | Path, *, show_progress: bool) -> dict[str, Any]:
    files = resolve_inputs(inputs)  # missing inputs fail here, naming the path
    val_split = val_split_for(config.val_fraction, config.val_method, files, config.text_field)
    job = ShardJob(
        files=files,
        tokenizer_dir=Path(tokenizer_dir),
        output_dir=Path(output_dir),
        fingerprint=tokenizer_fingerprint(tokenizer_dir),
        sources=source_list(files),
        val_split=val_split,
        config=config,
    )
    if complete_and_current(job.output_dir, job.fingerprint, job.sources, job.settings, config.overwrite):
        return read_manifest(job.output_dir)
    # Older shards stay as they are until the new ones are whole: both schedulers stage beside them and
    # publish() swaps them in, so an --overwrite that fails leaves the earlier shards untouched.
    job.output_dir.mkdir(parents=True, exist_ok=True)
    if config.on_executor:
        from lmfoundry.data.shards.steps import run_tasks

        return run_tasks(job)
    from lmfoundry.data.shards.local import run_local

    return run_local(job, show_progress=show_progress)
