"""The recipe's ``run`` section: the run folder, the seed, which stages ``lmfoundry run`` runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmfoundry.data.executors import EXECUTORS
from lmfoundry.layout import DEFAULT_RUN_FOLDER, STAGES


@dataclass
class RunConfig:
    """One run: where it lives and what it runs."""

    output: str = field(default=DEFAULT_RUN_FOLDER, metadata={"alias": "--output"})
    """the run folder; every stage writes its own folder under it (RUN/curate, RUN/tokenizer, RUN/shards, …)"""
    seed: int = 0
    """seed of the whole run (training's default seed)"""
    default_corpus: bool = True
    """curate the built-in corpus (KJV Bible + Python standard library) when data.inputs is empty"""
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    """the stages to run, a subset of: curate, tokenizer, tokenize, train, eval, export"""

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"recipe field run.stages: unknown stage(s) {unknown}; allowed: {', '.join(STAGES)}")


@dataclass
class TokenizeConfig:
    """How documents become token shards (``lmfoundry data tokenize``).

    With ``tasks``, ``executor`` or ``executor_options`` set, the shards are written by datatrove
    tasks (``workers`` of them at once locally), so tokenization scales out on Slurm or Ray like
    curation does. The shards and the manifest are the same either way.
    """

    val_fraction: float = field(default=0.01, metadata={"alias": "--val-fraction"})
    """share of documents in the val split, chosen by text hash (the tokenizer holds out the same ones)"""
    workers: int = field(default=1, metadata={"alias": "--workers"})
    """encoding processes (or datatrove tasks at once, locally)"""
    shard_tokens: int = field(default=100_000_000, metadata={"alias": "--shard-tokens"})
    """tokens per shard file"""
    text_field: str = field(default="text", metadata={"alias": "--text-field"})
    """jsonl/parquet field holding the text"""
    tasks: int | None = field(default=None, metadata={"alias": "--tasks"})
    """datatrove tasks the input files are split into (default: workers)"""
    executor: str | None = field(default=None, metadata={"alias": "--executor"})
    """run as datatrove tasks on this executor: local, slurm or ray (default: one local job)"""
    executor_options: dict[str, Any] = field(default_factory=dict, metadata={"alias": "--executor-options"})
    """passed to the datatrove executor, e.g. {partition: cpu, time: "04:00:00"}"""

    def __post_init__(self) -> None:
        if self.executor is not None and self.executor not in EXECUTORS:
            raise ValueError(f"recipe field tokenize.executor: {self.executor!r}; allowed: {', '.join(EXECUTORS)}")
        if self.tasks is not None and self.tasks < 1:
            raise ValueError(f"recipe field tokenize.tasks must be at least 1, got {self.tasks}")
