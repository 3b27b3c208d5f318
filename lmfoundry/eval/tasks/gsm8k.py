"""GSM8K (Cobbe et al. 2021) as lm-eval-harness's ``gsm8k`` and ``gsm8k_cot`` tasks (version 3.0).

Both are copied from lm-eval 0.4's task YAMLs (``lm_eval/tasks/gsm8k/gsm8k.yaml`` and
``gsm8k-cot.yaml``) so a number here is the number lm-eval reports for the same model and data:

* ``gsm8k``: 5-shot by default. For each test question, in order, the shots are drawn from the
  train split with one ``random.Random(seed)`` for the whole run (lm-eval's default sampler with
  its fewshot seed, 1234 by default), so every question gets its own exemplars. Prompt:
  ``Question: {q}\\nAnswer: {full worked answer}\\n\\n`` per shot, then ``Question: {q}\\nAnswer:``.
* ``gsm8k_cot``: 8-shot by default from lm-eval's eight fixed chain-of-thought exemplars (its
  ``first_n`` sampler), ``Q: {q}\\nA: {target}`` with answers ending in ``The answer is N.``.

Greedy generation, up to 256 new tokens (lm-eval's default ``max_gen_toks``), cut at the task's stop
sequences plus the tokenizer's EOS. Two scores, as lm-eval's two filters: ``strict-match`` (the
number after ``#### `` / ``The answer is``) and ``flexible-extract`` (the last number-like string),
each compared with the reference by lm-eval's ``exact_match`` (case-insensitive, with ``,``, ``$``,
everything up to ``#### `` and a final ``.`` deleted; no other number normalisation).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from lmfoundry.eval.config import EvalConfig
from lmfoundry.eval.data import load_hub, read_jsonl, require_file
from lmfoundry.eval.lm import LanguageModel
from lmfoundry.eval.metrics import load_metric
from lmfoundry.eval.metrics.exact_match.exact_match import normalize
from lmfoundry.eval.tasks import TaskResult

DEFAULT_NEW_TOKENS = 256  # lm-eval's HFLM default max_gen_toks (the gsm8k YAMLs set none)
LOCAL_LAYOUT = "gsm8k/train.jsonl and gsm8k/test.jsonl (fields question, answer ending in '#### N')"
FALLBACK = "[invalid]"  # lm-eval's RegexFilter result when nothing matches
FLEXIBLE = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
# lm-eval's metric_list for both tasks: exact_match with these options
EXACT_MATCH = {
    "regexes_to_ignore": [",", "\\$", "(?s).*#### ", "\\.$"],
    "ignore_case": True,
    "ignore_punctuation": False,
}

# lm-eval's gsm8k-cot.yaml fewshot_config.samples, verbatim
COT_EXEMPLARS = [
    (
        "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are "
        "done, there will be 21 trees. How many trees did the grove workers plant today?",
        "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must "
        "have been 21 - 15 = 6. The answer is 6.",
    ),
    (
        "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
        "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.",
    ),
    (
        "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in "
        "total?",
        "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After "
        "eating 35, they had 74 - 35 = 39. The answer is 39.",
    ),
    (
        "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops "
        "did Jason give to Denny?",
        "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 "
        "= 8. The answer is 8.",
    ),
    (
        "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he "
        "have now?",
        "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. "
        "5 + 4 = 9. The answer is 9.",
    ),
    (
        "There were nine computers in the server room. Five more computers were installed each day, from "
        "monday to thursday. How many computers are now in the server room?",
        "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 "
        "computers were added. 9 + 20 is 29. The answer is 29.",
    ),
    (
        "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many "
        "golf balls did he have at the end of wednesday?",
        "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 "
        "more, he had 35 - 2 = 33 golf balls. The answer is 33.",
    ),
    (
        "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
        "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 "
        "dollars left. 23 - 15 is 8. The answer is 8.",
    ),
]


@dataclass(frozen=True)
class Variant:
    """What distinguishes lm-eval's gsm8k tasks from each other."""

    name: str
    default_shots: int
    question: str  # doc_to_text, with {question}
    stop: tuple[str, ...]
    strict: str  # the strict-match filter's regex
    sampled_shots: bool  # shots drawn per question from train (else lm-eval's fixed exemplars)

    def prompt(self, shots: list[tuple[str, str]], question: str) -> str:
        """lm-eval's plain-text fewshot context: question, " ", answer, "\\n\\n" per shot."""
        examples = "".join(f"{self.question.format(question=q)} {a}\n\n" for q, a in shots)
        return examples + self.question.format(question=question)


GSM8K = Variant(
    name="gsm8k",
    default_shots=5,
    question="Question: {question}\nAnswer:",
    stop=("Question:", "</s>", "<|im_end|>"),
    strict=r"#### (\-?[0-9\.\,]+)",
    sampled_shots=True,
)
GSM8K_COT = Variant(
    name="gsm8k_cot",
    default_shots=8,
    question="Q: {question}\nA:",
    stop=("Q:", "</s>", "<|im_end|>"),
    strict=r"The answer is (\-?[0-9\.\,]+).",
    sampled_shots=False,
)
VARIANTS = {v.name: v for v in (GSM8K, GSM8K_COT)}


def regex_filter(text: str, pattern: str, group_select: int = 0) -> str:
    """lm-eval's ``RegexFilter`` then ``take_first``: the ``group_select``-th match of ``findall``
    (of a match with several groups, its first non-empty group), stripped; ``[invalid]`` if none."""
    matches = re.findall(pattern, text)
    if not matches:
        return FALLBACK
    match = matches[group_select]
    if isinstance(match, tuple):
        match = next((m for m in match if m), FALLBACK)
    return match.strip()


def strict_match(text: str, variant: Variant = GSM8K) -> str:
    return regex_filter(text, variant.strict)


def flexible_extract(text: str) -> str:
    return regex_filter(text, FLEXIBLE, group_select=-1)


def is_correct(prediction: str, reference: str) -> bool:
    """lm-eval's exact_match of one filtered answer against the task's target."""
    return normalize(prediction, **EXACT_MATCH) == normalize(reference, **EXACT_MATCH)


def reference_answer(answer: str, where: str) -> str:
    """The final number of a GSM8K solution (``#### N``), as the cot task's target."""
    if "####" not in answer:
        raise ValueError(f"{where}: answer has no '#### N' final line")
    return answer.split("####")[-1].strip()


class GSM8KTask:
    """``gsm8k`` (lm-eval ``gsm8k``) and, with ``variant=GSM8K_COT``, ``gsm8k_cot``."""

    def __init__(self, options: EvalConfig, variant: Variant = GSM8K) -> None:
        self.variant = variant
        self.name = variant.name
        self.num_fewshot = variant.default_shots if options.num_fewshot is None else options.num_fewshot
        self.max_new_tokens = options.max_new_tokens
        self.seed = options.seed
        splits = ("train", "test") if variant.sampled_shots and self.num_fewshot else ("test",)
        if options.data_dir:
            folder = options.data_dir / "gsm8k"
            paths = {s: require_file(folder / f"{s}.jsonl", LOCAL_LAYOUT) for s in splits}
            data = {s: read_jsonl(paths[s], ("question", "answer")) for s in splits}
            where = [f"{paths['test']}:{i + 1}" for i in range(len(data["test"]))]
            self.source = str(folder)
        else:
            data = {s: load_hub("openai/gsm8k", "main", s, LOCAL_LAYOUT) for s in splits}
            where = [f"openai/gsm8k test[{i}]" for i in range(len(data["test"]))]
            self.source = "openai/gsm8k main"
        pool = (
            [(d["question"], d["answer"]) for d in data.get("train", [])]
            if variant.sampled_shots
            else COT_EXEMPLARS
        )
        if len(pool) < self.num_fewshot:
            raise ValueError(
                f"{self.name}: {self.num_fewshot}-shot needs {self.num_fewshot} exemplars, found {len(pool)}"
            )
        self.test = data["test"][: options.limit]
        # lm-eval's targets: the whole solution for gsm8k (its '(?s).*#### ' regex strips the working
        # before comparing), the final number for gsm8k_cot; either way a '#### N' line is required
        finals = [reference_answer(d["answer"], w) for d, w in zip(self.test, where)]
        self.references = [d["answer"] for d in self.test] if variant.sampled_shots else finals
        rng = random.Random(self.seed)
        self.shots = [self._draw(pool, rng) for _ in self.test]

    def _draw(self, pool: list[tuple[str, str]], rng: random.Random) -> list[tuple[str, str]]:
        """One question's shots: lm-eval's sampler draws nothing (and uses no randomness) for 0-shot."""
        if not self.num_fewshot:
            return []
        return rng.sample(pool, self.num_fewshot) if self.variant.sampled_shots else pool[: self.num_fewshot]

    def prompts(self) -> list[str]:
        return [self.variant.prompt(s, d["question"]) for s, d in zip(self.shots, self.test)]

    def run(self, lm: LanguageModel) -> TaskResult:
        max_new_tokens = lm.new_tokens(self.max_new_tokens, DEFAULT_NEW_TOKENS)
        stop = lm.stop_sequences(self.variant.stop)
        completions = lm.generate(self.prompts(), max_new_tokens, stop=stop, desc=self.name)
        return self.score(completions, settings=self.settings(max_new_tokens, stop))

    def score(self, completions: list[str], settings: dict[str, Any] | None = None) -> TaskResult:
        """Both of lm-eval's filtered scores for completions of this task's questions, in order."""
        exact_match = load_metric("exact_match")
        samples, metrics = [], {}
        filters = {
            "strict-match": lambda c: strict_match(c, self.variant),
            "flexible-extract": flexible_extract,
        }
        predictions = {name: [f(c) for c in completions] for name, f in filters.items()}
        for name, preds in predictions.items():
            metrics[f"exact_match,{name}"] = exact_match.compute(
                predictions=preds, references=self.references, **EXACT_MATCH
            )["exact_match"]
        for i, (doc, completion, reference) in enumerate(zip(self.test, completions, self.references)):
            samples.append(
                {
                    "question": doc["question"],
                    "completion": completion,
                    "reference": reference,
                    **{
                        name: {"prediction": preds[i], "correct": is_correct(preds[i], reference)}
                        for name, preds in predictions.items()
                    },
                }
            )
        return TaskResult(
            metrics=metrics,
            details={"num_fewshot": self.num_fewshot, "num_questions": len(samples), "samples": samples},
            settings=settings or {},
        )

    def settings(self, max_new_tokens: int, stop: list[str]) -> dict[str, Any]:
        return {
            "mirrors": f"lm-eval {self.name} (version 3.0)",
            "data": self.source,
            "num_fewshot": self.num_fewshot,
            "fewshot": "drawn per question from train, random.Random(seed).sample"
            if self.variant.sampled_shots
            else "lm-eval's fixed chain-of-thought exemplars, first n",
            "seed": self.seed,
            "template": self.variant.question,
            "generation": "greedy",
            "max_new_tokens": max_new_tokens,
            "stop": stop,
            "filters": {"strict-match": self.variant.strict, "flexible-extract": FLEXIBLE},
            "exact_match": EXACT_MATCH,
        }
