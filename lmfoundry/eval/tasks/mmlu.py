"""MMLU (Hendrycks et al. 2021): 57 subjects of four-way multiple choice, k-shot from the dev split.

The prompt and scoring are lm-eval-harness's ``mmlu`` task (its ``mmlu_<subject>`` tasks, version
1.0), character for character: 0-shot by default as lm-eval's, a subject description, the first k
dev questions with their answer letter (``--num-fewshot``), then the question ending in
``Answer:``; the prediction is the letter whose continuation (" A" … " D") has the highest
log-likelihood. ``limit`` applies per subject, as lm-eval's does per task. ``acc`` is the
micro-average over questions (lm-eval's group ``acc``), ``acc_macro`` the mean over subjects.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from lmfoundry.eval.config import EvalConfig
from lmfoundry.eval.data import load_hub
from lmfoundry.eval.lm import LanguageModel
from lmfoundry.eval.metrics import load_metric
from lmfoundry.eval.tasks import TaskResult

logger = logging.getLogger(__name__)
LETTERS = ("A", "B", "C", "D")
LOCAL_LAYOUT = (
    "mmlu/dev/<subject>_dev.csv and mmlu/test/<subject>_test.csv (no header: question,A,B,C,D,answer)"
)


def format_question(doc: dict[str, Any]) -> str:
    choices = "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, doc["choices"]))
    return f"{doc['question'].strip()}{choices}\nAnswer:"


def build_prompt(subject: str, shots: list[dict[str, Any]], doc: dict[str, Any]) -> str:
    description = (
        f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    )
    examples = "".join(f"{format_question(s)} {LETTERS[s['answer']]}\n\n" for s in shots)
    return description + examples + format_question(doc)


def read_mmlu_csv(path: Path) -> list[dict[str, Any]]:
    """One subject file in the original Hendrycks layout."""
    docs = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if len(row) != 6:
                raise ValueError(
                    f"{where}: expected 6 columns (question, A, B, C, D, answer), got {len(row)}"
                )
            answer = row[5].strip()
            if answer not in LETTERS:
                raise ValueError(f"{where}: answer must be one of A, B, C, D, got {answer!r}")
            docs.append({"question": row[0], "choices": row[1:5], "answer": LETTERS.index(answer)})
    if not docs:
        raise ValueError(f"{path}: no questions; expected rows question,A,B,C,D,answer")
    return docs


def read_local_split(root: Path, split: str) -> dict[str, list[dict[str, Any]]]:
    folder = root / "mmlu" / split
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .csv files; expected {LOCAL_LAYOUT}")
    suffix = f"_{split}.csv"
    subjects = {}
    for path in files:
        if not path.name.endswith(suffix):
            raise ValueError(f"{path}: file name must be <subject>{suffix}")
        subjects[path.name[: -len(suffix)]] = read_mmlu_csv(path)
    return subjects


def read_hub_split(split: str) -> dict[str, list[dict[str, Any]]]:
    subjects: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in load_hub("cais/mmlu", "all", split, LOCAL_LAYOUT):
        subjects[row["subject"]].append(
            {"question": row["question"], "choices": list(row["choices"]), "answer": int(row["answer"])}
        )
    return dict(subjects)


class MMLUTask:
    name = "mmlu"

    def __init__(self, options: EvalConfig) -> None:
        self.num_fewshot = 0 if options.num_fewshot is None else options.num_fewshot
        read = (
            (lambda split: read_local_split(options.data_dir, split)) if options.data_dir else read_hub_split
        )
        self.test = {s: docs[: options.limit] for s, docs in sorted(read("test").items())}
        self.dev = read("dev") if self.num_fewshot else {}
        for subject in self.test:
            have = len(self.dev.get(subject, []))
            if have < self.num_fewshot:
                raise ValueError(
                    f"mmlu subject {subject!r}: {self.num_fewshot}-shot needs {self.num_fewshot} dev questions, found {have}"
                )

    def requests(self) -> list[tuple[str, str, str, int]]:
        """(subject, prompt, continuation, answer) for every question and every answer letter."""
        out = []
        for subject, docs in self.test.items():
            shots = self.dev.get(subject, [])[: self.num_fewshot]
            for doc in docs:
                prompt = build_prompt(subject, shots, doc)
                out.extend((subject, prompt, f" {letter}", doc["answer"]) for letter in LETTERS)
        return out

    def run(self, lm: LanguageModel) -> TaskResult:
        requests = self.requests()
        scores = lm.loglikelihood([(prompt, cont) for _, prompt, cont, _ in requests], desc="mmlu")
        accuracy = load_metric("accuracy")
        per_subject: dict[str, dict[str, list[int]]] = defaultdict(
            lambda: {"predictions": [], "references": []}
        )
        for q in range(0, len(requests), len(LETTERS)):
            subject, _, _, answer = requests[q]
            choice_scores = scores[q : q + len(LETTERS)]
            per_subject[subject]["predictions"].append(
                max(range(len(LETTERS)), key=choice_scores.__getitem__)
            )
            per_subject[subject]["references"].append(answer)
        subjects = {
            s: {"acc": accuracy.compute(**v)["accuracy"], "n": len(v["references"])}
            for s, v in per_subject.items()
        }
        micro = accuracy.compute(
            predictions=[p for v in per_subject.values() for p in v["predictions"]],
            references=[r for v in per_subject.values() for r in v["references"]],
        )["accuracy"]
        macro = sum(v["acc"] for v in subjects.values()) / max(len(subjects), 1)
        return TaskResult(
            metrics={"acc": micro, "acc_macro": macro},
            details={
                "num_fewshot": self.num_fewshot,
                "num_questions": len(requests) // 4,
                "subjects": subjects,
            },
            settings={
                "mirrors": "lm-eval mmlu_<subject> (version 1.0), acc averaged over questions",
                "num_fewshot": self.num_fewshot,
                "fewshot": "the first k dev questions of the subject",
                "template": "{description}{shots}{question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer:",
                "choices": [f" {letter}" for letter in LETTERS],
            },
        )
