"""Cross-check: our MMLU accuracy equals lm-eval-harness's on the same model and the same data.

Builds a small Foundry model (trained briefly on text that contains the answers, so accuracy is not
stuck at chance), writes MMLU-format CSVs (Hendrycks layout), then scores them with
``lmfoundry.eval`` and with lm-eval-harness's own ``mmlu`` template through
``lm_eval.simple_evaluate`` (in this process, offline). Also reports how many per-choice
log-likelihoods differ by more than 1e-3 nats.

    python benchmarks/crosscheck_lm_eval.py [--quick] [--model DIR --data-dir DIR]

Ends with ``RESULT mmlu_crosscheck ours=<acc> ref=<acc> ratio=<1-|diff|> target=0.995``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

SUBJECTS = ("arithmetic", "geography", "colors", "animals")
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


def make_questions(subject: str, n: int, rng: random.Random) -> list[tuple[str, list[str], int]]:
    questions = []
    for i in range(n):
        if subject == "arithmetic":
            a, b = rng.randint(1, 20), rng.randint(1, 20)
            right, pool = str(a + b), [str(a + b + d) for d in (-2, -1, 1, 2, 3)]
            text = f"What is {a} plus {b}?"
        else:
            key, right = FACTS[subject][i % len(FACTS[subject])]
            pool = [v for _, v in FACTS[subject] if v != right]
            text = f"What is the {key}?"
        choices = [right, *rng.sample(pool, 3)]
        rng.shuffle(choices)
        questions.append((text, choices, choices.index(right)))
    return questions


def write_data(root: Path, n_test: int, seed: int) -> list[str]:
    """MMLU CSVs under ``root/mmlu`` and the training sentences that teach some of the answers."""
    rng = random.Random(seed)
    corpus = []
    for split, n in (("dev", 5), ("test", n_test)):
        (root / "mmlu" / split).mkdir(parents=True, exist_ok=True)
        for subject in SUBJECTS:
            rows = make_questions(subject, n, rng)
            with open(root / "mmlu" / split / f"{subject}_{split}.csv", "w", newline="") as f:
                csv.writer(f).writerows([q, *c, "ABCD"[a]] for q, c, a in rows)
            corpus += [
                f"{q}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer: {'ABCD'[a]}\n\n"
                for q, c, a in rows
            ]
    return corpus


def build_model(out: Path, corpus: list[str], steps: int) -> Path:
    from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
    from lmfoundry.tokenization import special_token_ids, train_tokenizer

    tokenizer = train_tokenizer(corpus * 4, 512, out, show_progress=False, overwrite=True)
    config = FoundryConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        **special_token_ids(tokenizer),
    )
    torch.manual_seed(0)
    model = FoundryForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids = torch.tensor(tokenizer("".join(corpus))["input_ids"])
    for step in range(steps):
        start = (step * 97) % max(len(ids) - 257, 1)
        batch = ids[start : start + 257][None]
        loss = model(batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer questions and training steps (under a minute)"
    )
    parser.add_argument("--model", help="evaluate this saved model instead of building one")
    parser.add_argument(
        "--data-dir", help="local MMLU data (DIR/mmlu/{dev,test}/*.csv) instead of the synthetic set"
    )
    parser.add_argument("--num-fewshot", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import lm_eval
    from lm_eval.tasks import TaskManager

    from lmfoundry.eval import LanguageModel, evaluate_model
    from lmfoundry.eval.lm_eval_tasks import GROUP, write_mmlu_tasks

    work = Path(tempfile.mkdtemp(prefix="crosscheck-"))
    data_dir = Path(args.data_dir) if args.data_dir else work / "data"
    if args.data_dir is None:
        corpus = write_data(data_dir, n_test=6 if args.quick else 40, seed=0)
    model_dir = (
        Path(args.model) if args.model else build_model(work / "model", corpus, 60 if args.quick else 400)
    )

    start = time.perf_counter()
    lm = LanguageModel.load(model_dir, batch_size=args.batch_size, device="cpu")
    ours = evaluate_model(lm, "mmlu", data_dir=data_dir, num_fewshot=args.num_fewshot)["results"]["mmlu"][
        "acc"
    ]
    ours_s = time.perf_counter() - start

    start = time.perf_counter()
    names = write_mmlu_tasks(data_dir, work / "lm_eval_tasks")
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},trust_remote_code=True,dtype=float32",
        tasks=[GROUP],
        num_fewshot=args.num_fewshot,
        batch_size=args.batch_size,
        device="cpu",
        task_manager=TaskManager(include_path=str(work / "lm_eval_tasks"), include_defaults=False),
        log_samples=True,
    )
    ref = out["results"][GROUP]["acc,none"]
    ref_s = time.perf_counter() - start

    pairs = [
        (tuple(s["arguments"][i]), float(r[0][0]))
        for n in names
        for s in out["samples"][n]
        for i, r in enumerate(s["resps"])
    ]
    mine = lm.loglikelihood([p for p, _ in pairs])
    worst = max(abs(a - b) for a, (_, b) in zip(mine, pairs))
    off = sum(abs(a - b) > 1e-3 for a, (_, b) in zip(mine, pairs))
    print(
        f"questions: {len(pairs) // 4} in {len(names)} subjects, {args.num_fewshot}-shot, model {model_dir}"
    )
    print(f"lmfoundry   acc={ours:.4f}  ({ours_s:.1f}s)")
    print(f"lm-eval     acc={ref:.4f}  ({ref_s:.1f}s incl. loading the model)")
    print(f"log-likelihoods: {off} of {len(pairs)} differ by more than 1e-3 nats (max |diff| {worst:.2e})")
    ratio = 1 - abs(ours - ref)
    print(f"RESULT mmlu_crosscheck ours={ours:.4f} ref={ref:.4f} ratio={ratio:.4f} target=0.995")
    return 0


if __name__ == "__main__":
    sys.exit(main())
