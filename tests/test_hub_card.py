"""The model card: metadata the Hub understands, and numbers taken from the run's own files."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from huggingface_hub import ModelCard
from test_hub_fixtures import build_run_folder, build_tiny_model

from lmfoundry.hub import write_model_card
from lmfoundry.hub.artifacts import locate_model_dir
from lmfoundry.hub.card import is_generated_card
from lmfoundry.tokenization import tokenizer_fingerprint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    build_run_folder(run)
    return run


def test_card_from_a_full_run(run_dir):
    path = write_model_card(run_dir / "model", run_dir, repo_id="alice/tiny-foundry")
    assert path == run_dir / "model" / "README.md"
    card = ModelCard.load(path)
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0"
    assert meta["pipeline_tag"] == "text-generation" and meta["library_name"] == "transformers"
    assert {"lmfoundry", "foundry", "custom_code"} <= set(meta["tags"])
    assert meta["datasets"] == ["roneneldan/TinyStories"]  # only the Hub source, not the local glob

    # model-index carries every numeric result of results.json
    results = {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {
        ("validation-shards", "bits_per_byte"): 1.2345, ("validation-shards", "perplexity"): 12.5,
        ("validation-shards", "loss"): 2.5, ("cais/mmlu", "acc"): 0.25,
    }

    text = card.text
    model = build_tiny_model(run_dir / "again")  # same config, so the same parameter count
    assert f"{model.num_parameters():,}" in text
    assert "| Vocabulary size | 320 |" in text and "| Attention heads (query / key-value) | 4 / 2 |" in text
    assert tokenizer_fingerprint(run_dir / "model") in text
    assert "| eos_token | `<\\|endoftext\\|>` | 0 |" in text
    # data: sources and curation totals and removal reasons, largest first
    assert "- `hf:roneneldan/TinyStories`" in text and "- `corpus/*.txt`" in text
    assert "Kept 950 of 1,200 documents read (3.90 of 4.80 MB)" in text
    assert "| filters | 1,200 | 990 | 4.80 | 4.00 |" in text and "| dedup | 990 | 950 | 4.00 | 3.90 |" in text
    reasons = [text.index(f"| {r} |") for r in ("gopher:repetition", "language:not_en", "minhash:duplicate",
                                                 "url:blocklist")]
    assert reasons == sorted(reasons)  # most documents first
    # training: last train record (the torn last line is skipped), last val record, spikes, recipe, curve
    assert "| Optimizer steps | 20 |" in text and "| Tokens seen | 5,120 |" in text
    assert "| Final training loss | 2 |" in text and "| Final validation bits per byte | 1.234 |" in text
    assert "Loss-spike events (1)" in text and "| 12 | 9.5 | loss z-score | 10 | 4 |" in text
    # 20 steps of 256 tokens at 1500 tokens/s
    assert "| Training time (from logged throughput) | 3.4 s |" in text
    # the "run" record and train_time_s (205 s at the last step)
    assert "| Training time (wall clock) | 3.4 min |" in text
    assert "| Hardware | NVIDIA H100 80GB HBM3 (cuda) |" in text and "| Processes | 8 |" in text
    assert "| Mixed precision | bf16 |" in text
    assert "| Software | torch 2.9.0, transformers 5.0.0, accelerate 1.11.0, lmfoundry 0.1.0 |" in text
    assert "lr: 0.003" in text
    assert "![Training loss](loss_curve.png)" in text
    assert (run_dir / "model" / "loss_curve.png").read_bytes() == (run_dir / "train" / "loss_curve.png").read_bytes()
    assert "| bpb | bits_per_byte | 1.234 |  |" in text and "| mmlu | acc | 0.25 | 5-shot, 57 questions |" in text
    assert "Samples at step 20" in text and "The quick fox\n---\nIn the beginning" in text and "early" not in text
    assert 'from_pretrained("alice/tiny-foundry", trust_remote_code=True)' in text
    assert 'pipeline("text-generation", model="alice/tiny-foundry", trust_remote_code=True)' in text
    assert is_generated_card(path)


def test_card_shows_no_absolute_local_path(run_dir, tmp_path):
    text = ModelCard.load(write_model_card(run_dir / "model", run_dir)).content
    tmp_root = str(run_dir.parent)  # holds the run folder and the private data outside it
    assert "/private/" in (run_dir / "train" / "recipe.yaml").read_text()  # the run's own record keeps them
    assert tmp_root not in text
    # inside the run: relative to it; outside: only the name; Hub ids and relative paths as they were
    assert "shards: shards" in text and "tokenizer: tokenizer" in text and "output: ." in text
    assert "- `<local>/notes.jsonl`" in text and "data_dir: <local>/eval-data" in text
    assert "- `hf:roneneldan/TinyStories`" in text and "- `corpus/*.txt`" in text
    assert 'from_pretrained("model", trust_remote_code=True)' in text  # no repo id: the run's model folder
    # data sources recorded only in curate/stats.json (a recipe without data.inputs)
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    stats = json.loads((run / "curate" / "stats.json").read_text())
    stats["config"] = {"inputs": [str(run / "corpus" / "books"), "/home/someone/code"]}
    (run / "curate" / "stats.json").write_text(json.dumps(stats))
    (run / "train" / "recipe.yaml").write_text(yaml.safe_dump({"data": {"inputs": []}}))
    text = ModelCard.load(write_model_card(run / "model", run)).content
    assert "- `corpus/books`" in text and "- `<local>/code`" in text
    assert str(tmp_path) not in text and "/home/someone" not in text


def test_card_of_a_bare_model_says_what_is_missing(tmp_path):
    build_tiny_model(tmp_path / "model")
    card = ModelCard.load(write_model_card(tmp_path / "model"))
    assert "model-index" not in card.content and card.data.eval_results is None
    for missing in ("has not been evaluated", "No curation statistics", "No training metrics", "No samples",
                    "Loss-spike events: not recorded", "recipe was not recorded"):
        assert missing in card.text
    assert not (tmp_path / "model" / "loss_curve.png").exists()


def test_hardware_and_wall_clock_of_older_and_resumed_runs(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    metrics = run / "train" / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()[:-1]]  # without the torn line
    # a run folder from before the "run" record and train_time_s
    old = [{k: v for k, v in r.items() if k not in ("elapsed_s", "train_time_s")} for r in rows if r["kind"] != "run"]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in old))
    text = ModelCard.load(write_model_card(run / "model", run)).text
    assert "| Hardware | not recorded |" in text and "| Training time (wall clock) | not recorded |" in text
    assert "| Processes |" not in text and "| Software |" not in text
    # resumed at step 10 on other hardware: both devices, the last session's processes
    resumed = {**rows[0], "step": 10, "resumed": True, "device_name": "NVIDIA A100-SXM4-80GB", "num_processes": 4}
    metrics.write_text("".join(json.dumps(r) + "\n" for r in [*rows[:11], resumed, *rows[11:]]))
    text = ModelCard.load(write_model_card(run / "model", run)).text
    assert "| Hardware | NVIDIA H100 80GB HBM3 (cuda); then NVIDIA A100-SXM4-80GB (cuda) |" in text
    assert "| Processes | 4 |" in text


def test_run_dir_is_found_from_the_model_folder(run_dir, tmp_path):
    assert locate_model_dir(run_dir) == (run_dir / "model", run_dir)
    assert locate_model_dir(run_dir / "model") == (run_dir / "model", run_dir.resolve())
    # a training run folder (train/model) next to its metrics
    train = tmp_path / "standalone-training-run"
    shutil.copytree(run_dir / "model", train / "model")
    shutil.copy(run_dir / "train" / "metrics.jsonl", train)
    assert locate_model_dir(train) == (train / "model", train)
    card = ModelCard.load(write_model_card(train / "model"))
    assert "| Optimizer steps | 20 |" in card.text
    assert card.text.splitlines()[3] == "# standalone-training-run"  # named after its run, not "model"


def test_default_corpus_run_names_the_built_in_corpus(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "curate" / "stats.json").unlink()
    (run / "train" / "recipe.yaml").write_text(yaml.safe_dump({"run": {"default_corpus": True}, "data": {"inputs": []}}))
    card = ModelCard.load(write_model_card(run / "model"))
    assert "- lmfoundry's built-in corpus: the King James Bible" in card.text
    assert "datasets" not in card.data.to_dict()


def test_malformed_artifacts_do_not_break_the_card(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "eval" / "results.json").write_text("{not json")
    (run / "curate" / "stats.json").write_text(json.dumps(["unexpected", "schema"]))
    card = ModelCard.load(write_model_card(run / "model", run))
    assert "has not been evaluated" in card.text and "No curation statistics" in card.text
    (run / "curate" / "stats.json").write_text(json.dumps({"read": {"documents": 3}, "output": {}}))
    card = ModelCard.load(write_model_card(run / "model", run))
    assert "recorded in an unexpected format" in card.text


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected config\.json"):
        locate_model_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        locate_model_dir(tmp_path / "nope")
