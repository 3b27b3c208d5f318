"""GSM8K (Cobbe et al. 2021): grade-school math, k-shot chain of thought, greedy generation.

The exemplars are k training problems drawn once with the seed, shown as
``Question: …\\nAnswer: <worked solution ending in #### N>``. The model's answer is the number after
``####`` in its completion, else the last number it wrote; it is compared with the reference after
numeric normalization (commas, ``$``, a trailing ``.0`` do not matter).
"""

from __future__ import annotations

import random
import re
from typing import Any

from lmfoundry.eval.config import EvalConfig
from lmfoundry.eval.data import load_hub, read_jsonl, require_file
from lmfoundry.eval.lm import LanguageModel
from lmfoundry.eval.metrics import load_metric
from lmfoundry.eval.tasks import TaskResult

DEFAULT_NEW_TOKENS = 256  # at most half the model's context
STOP = ("Question:", "\n\n", "</s>", "<|im_end|>", "<|endoftext|>")
LOCAL_LAYOUT = "gsm8k/train.jsonl and gsm8k/test.jsonl (fields question, answer ending in '#### N')"
_NUMBER_PATTERN = r"-?\$?\d[\d,]*(?:\.\d+)?"
_NUMBER = re.compile(_NUMBER_PATTERN)
# A final answer must hold a digit: "#### ." is no answer, and the last number counts instead.
_FINAL = re.compile(r"####\s*(\$?" + _NUMBER_PATTERN + ")")


def extract_answer(text: str) -> str | None:
    """The final answer of a completion: after ``####`` if present, else the last number."""
    final = _FINAL.search(text)
    if final:
        return final.group(1)
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def reference_answer(answer: str, where: str) -> str:
    if "####" not in answer:
        raise ValueError(f"{where}: answer has no '#### N' final line")
    return answer.rsplit("####", 1)[1].strip()


def build_prompt(shots: list[dict[str, Any]], question: str) -> str:
    examples = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
    return f"{examples}Question: {question}\nAnswer:"


class GSM8KTask:
    name = "gsm8k"

    def __init__(self, options: EvalConfig) -> None:
        self.num_fewshot = 8 if options.num_fewshot is None else options.num_fewshot
        self.max_new_tokens = options.max_new_tokens
        if options.data_dir:
            folder = options.data_dir / "gsm8k"
            paths = {s: require_file(folder / f"{s}.jsonl", LOCAL_LAYOUT) for s in ("train", "test")}
            train, test = (read_jsonl(paths[s], ("question", "answer")) for s in ("train", "test"))
            where = [f"{paths['test']}:{i + 1}" for i in range(len(test))]
        else:
            train, test = (load_hub("openai/gsm8k", "main", s, LOCAL_LAYOUT) for s in ("train", "test"))
            where = [f"openai/gsm8k test[{i}]" for i in range(len(test))]
        if len(train) < self.num_fewshot:
            raise ValueError(
                f"gsm8k: {self.num_fewshot}-shot needs {self.num_fewshot} training problems, found {len(train)}"
            )
        self.shots = random.Random(options.seed).sample(train, self.num_fewshot)
        self.test = test[: options.limit]
        self.references = [reference_answer(d["answer"], w) for d, w in zip(self.test, where)]

    def run(self, lm: LanguageModel) -> TaskResult:
        prompts = [build_prompt(self.shots, d["question"]) for d in self.test]
        max_new_tokens = lm.new_tokens(self.max_new_tokens, DEFAULT_NEW_TOKENS)
        completions = lm.generate(prompts, max_new_tokens, stop=STOP, desc="gsm8k")
        predictions = [extract_answer(c) for c in completions]
        score = load_metric("exact_match").compute(
            predictions=[p or "" for p in predictions], references=self.references
        )
        samples = [
            {"question": d["question"], "completion": c, "prediction": p, "reference": r}
            for d, c, p, r in zip(self.test, completions, predictions, self.references)
        ]
        return TaskResult(
            metrics={"exact_match": score["exact_match"]},
            details={
                "num_fewshot": self.num_fewshot,
                "num_questions": len(samples),
                "max_new_tokens": max_new_tokens,
                "samples": samples,
            },
        )
