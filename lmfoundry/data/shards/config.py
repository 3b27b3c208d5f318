"""``TokenizeConfig``: the recipe's ``tokenize`` section, and the settings of ``lmfoundry data tokenize``.

The stage alone and the stage under ``lmfoundry run`` read this one dataclass, so they get the same
defaults. ``workers`` defaults to every CPU core in both (``None``): encoding is embarrassingly
parallel and the shards do not depend on it (the recipe used to default to 1, the CLI to the CPU
count).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from lmfoundry.data.executors import EXECUTORS
from lmfoundry.tokenization.holdout import check_val_split

DEFAULT_SHARD_TOKENS = 100_000_000  # ~200 MB per uint16 shard
DEFAULT_CHECKPOINT_BYTES = 1 << 30  # text per resumable part of the local scheduler: a few shards' worth


@dataclass
class TokenizeConfig:
    """How documents become train/val token shards (:func:`lmfoundry.data.shards.tokenize_shards`).

    With ``tasks``, ``executor`` or ``executor_options`` set, datatrove tasks write the shards (so
    tokenization scales out on Slurm or Ray like curation); otherwise one local job does. The
    manifest fields and each split's documents are the same either way.
    """

    # Share of the text held out for validation (0 = no val split). The tokenizer holds out the same text.
    val_fraction: float = field(default=0.01, metadata={"alias": "--val-fraction"})
    # How val is chosen: "documents" (whole documents by a hash of their text), "tail" (the last
    # val_fraction of every document), or "auto": documents when the corpus has at least
    # 10 / val_fraction documents, else tail, so a corpus of one book still gets a val split.
    val_method: str = field(default="auto", metadata={"alias": "--val-method"})
    # The jsonl/parquet field holding the text (txt/md files are one document each).
    text_field: str = field(default="text", metadata={"alias": "--text-field"})
    # Encoding processes (local job) or tasks running at once (local executor); None = every CPU core.
    workers: int | None = field(default=None, metadata={"alias": "--workers"})
    # Tokens per shard file; a document never spans two shards.
    shard_tokens: int = field(default=DEFAULT_SHARD_TOKENS, metadata={"alias": "--shard-tokens"})
    # Local job: UTF-8 bytes of text per resumable part (an interrupted run resumes after the last part).
    checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES
    # Datatrove tasks the input files are split into (task r reads every tasks-th file); None = workers.
    tasks: int | None = field(default=None, metadata={"alias": "--tasks"})
    # Datatrove executor: "local", "slurm" or "ray"; None = the local job unless tasks/options are set.
    executor: str | None = field(default=None, metadata={"alias": "--executor"})
    # Passed as they are to the datatrove executor, e.g. {"partition": "cpu", "time": "04:00:00"}.
    executor_options: dict[str, Any] = field(default_factory=dict, metadata={"alias": "--executor-options"})
    # Replace shards made with another tokenizer, other inputs or other settings (else refused).
    overwrite: bool = field(default=False, metadata={"alias": "--overwrite"})

    def __post_init__(self) -> None:
        try:
            check_val_split(self.val_fraction, self.val_method)
        except ValueError as err:
            raise ValueError(f"tokenize.{err}") from None
        if self.executor is not None and self.executor not in EXECUTORS:
            raise ValueError(f"tokenize.executor: expected one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        for name in ("workers", "tasks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"tokenize.{name} must be at least 1, got {value}")
        for name in ("shard_tokens", "checkpoint_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"tokenize.{name} must be positive, got {getattr(self, name)}")

    @property
    def processes(self) -> int:
        """``workers``, with None resolved to this machine's CPU count."""
        return self.workers or os.cpu_count() or 1

    @property
    def on_executor(self) -> bool:
        """Whether datatrove tasks do the work (else the local job)."""
        return self.executor is not None or self.tasks is not None or bool(self.executor_options)
