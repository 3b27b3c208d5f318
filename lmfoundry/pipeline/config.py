"""The recipe's ``run`` section: the run folder, the seed, which stages ``lmfoundry run`` runs."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    budget: str | None = field(default=None, metadata={"alias": "--budget"})
    """a wall-clock budget for the whole run ("3m", "2h"): the data stages run first, training gets what is left
    (train.max_time), less 20 s kept for evaluation and export"""

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"recipe field run.stages: unknown stage(s) {unknown}; allowed: {', '.join(STAGES)}")
