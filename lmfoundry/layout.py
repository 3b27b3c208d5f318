"""Where each stage of a run writes, under one run folder: the one spelling of the layout.

Anyone may import this module (stage commands take their default folders from it, the model card
finds a run's files through it); it imports nothing of lmfoundry, so it can never close a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The stages of `lmfoundry run`, in the order they run.
STAGES = ("curate", "tokenizer", "tokenize", "train", "eval", "export")

# Where a run folder goes when neither the recipe (run.output) nor the command line names one.
DEFAULT_RUN_FOLDER = "runs/lmfoundry"


@dataclass(frozen=True)
class RunLayout:
    """The folders and files of one run: ``RUN/curate``, ``RUN/tokenizer``, ``RUN/shards``, ``RUN/train``, …"""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def corpus(self) -> Path:
        """The built-in default corpus, written here when the recipe names no inputs."""
        return self.root / "corpus"

    @property
    def curate(self) -> Path:
        return self.root / "curate"

    @property
    def curate_stats(self) -> Path:
        return self.curate / "stats.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def train_model(self) -> Path:
        """The training stage's own export (the export stage copies it to :attr:`model`)."""
        return self.train / "model"

    @property
    def train_metrics(self) -> Path:
        return self.train / "metrics.jsonl"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def eval_results(self) -> Path:
        return self.eval / "results.json"

    @property
    def model(self) -> Path:
        return self.root / "model"

    def marker(self, stage: str) -> Path:
        """The completion marker of ``stage``: written atomically once the stage's output is whole."""
        return self.root / ".stages" / f"{stage}.json"
