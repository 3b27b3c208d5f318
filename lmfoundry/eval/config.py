"""The recipe's ``eval`` section: which tasks ``lmfoundry eval`` (and ``lmfoundry run``) score, and how."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EvalConfig:
    """Every setting of an evaluation; ``None`` means the task's own default (recorded in results.json)."""

    tasks: list[str] = field(default_factory=lambda: ["bpb"], metadata={"alias": "--tasks"})
    """tasks to run (a list, or comma-separated): bpb, mmlu, gsm8k, humaneval"""
    data_dir: Path | None = field(default=None, metadata={"alias": "--data-dir"})
    """local task data: mmlu/{dev,test}/*.csv, gsm8k/{train,test}.jsonl, humaneval/HumanEval.jsonl.gz (default: the Hub)"""
    limit: int | None = field(default=None, metadata={"alias": "--limit"})
    """evaluate only the first N items (per subject for MMLU)"""
    batch_size: int = field(default=8, metadata={"alias": "--batch-size"})
    """sequences per forward pass"""
    num_fewshot: int | None = field(default=None, metadata={"alias": "--num-fewshot"})
    """shots (default: each task's own)"""
    seed: int = field(default=1234, metadata={"alias": "--seed"})
    """few-shot draw and sampling seed"""
    bpb_data: str | None = field(default=None, metadata={"alias": "--bpb-data"})
    """for bpb: a shards folder, text/jsonl/parquet files, or a dataset id (lmfoundry run: the run's val shards)"""
    tokenizer: str | None = field(default=None, metadata={"alias": "--tokenizer"})
    """tokenizer folder, when the model folder has none"""
    num_samples: int = field(default=1, metadata={"alias": "--num-samples"})
    """HumanEval samples per problem (pass@k for k <= num_samples)"""
    temperature: float | None = field(default=None, metadata={"alias": "--temperature"})
    """HumanEval sampling temperature (default 0 for one sample, else 0.8)"""
    max_new_tokens: int | None = field(default=None, metadata={"alias": "--max-new-tokens"})
    """generation budget (default: each task's own, at most half the model's context)"""
    sandbox_timeout: float = field(default=10.0, metadata={"alias": "--sandbox-timeout"})
    """seconds per HumanEval program"""
    device: str | None = field(default=None, metadata={"alias": "--device"})
    """cpu, cuda, cuda:1 … (default: cuda when available)"""
    trust_remote_code: bool = field(default=False, metadata={"alias": "--trust-remote-code"})
    """allow a Hub model's own modeling code"""

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = [self.tasks]
        self.tasks = [name.strip() for item in self.tasks for name in str(item).split(",") if name.strip()]
        if self.data_dir is not None:
            self.data_dir = Path(self.data_dir)
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"recipe field eval.limit: expected at least 1, got {self.limit}")
