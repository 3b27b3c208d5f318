"""Shared builders for the hub and generation tests (no tests here): a tiny real Foundry model with a
trained tokenizer, and a run folder around it holding each stage's artifacts in their real formats."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from lmfoundry.data.curation.report import build_report
from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
from lmfoundry.tokenization import special_token_ids, train_tokenizer

CORPUS = [
    f"In the beginning {i} the quick brown fox jumps over the lazy dog, and the dog sleeps {i % 7} hours."
    for i in range(200)
]


def build_tiny_model(model_dir: Path, seed: int = 0) -> FoundryForCausalLM:
    """Save a randomly initialised 2-layer Foundry model and its BPE tokenizer to ``model_dir``."""
    import torch

    tokenizer = train_tokenizer(CORPUS, 320, model_dir, show_progress=False)
    torch.manual_seed(seed)
    config = FoundryConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, **special_token_ids(tokenizer),
    )
    model = FoundryForCausalLM(config).eval()
    model.save_pretrained(model_dir)
    return model


def build_run_folder(run_dir: Path) -> FoundryForCausalLM:
    """A run folder as ``lmfoundry run`` leaves it: model/, curate/, train/ and eval/ artifacts."""
    model = build_tiny_model(run_dir / "model")
    for sub in ("curate", "train", "eval"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    # stats.json through the curation stage's own report builder, from datatrove-style counters
    stats = build_report([
        ("read", {"input_files": 3, "out_docs": 1200, "out_bytes": 4_800_000, "skipped:binary": 2}),
        ("filters", {"in_docs": 1200, "in_bytes": 4_800_000, "out_docs": 990, "out_bytes": 4_000_000,
                     "dropped:gopher:repetition_docs": 130, "dropped:gopher:repetition_bytes": 500_000,
                     "dropped:language:not_en_docs": 70, "dropped:language:not_en_bytes": 250_000,
                     "dropped:url:blocklist_docs": 10, "dropped:url:blocklist_bytes": 50_000}),
        ("dedup", {"in_docs": 990, "in_bytes": 4_000_000, "out_docs": 950, "out_bytes": 3_900_000,
                   "dropped:minhash:duplicate_docs": 40, "dropped:minhash:duplicate_bytes": 100_000}),
    ])
    (run_dir / "curate" / "stats.json").write_text(json.dumps(stats))
    # absolute local paths, as a real run records them: inside the run folder and outside it
    private = run_dir.parent / "private"
    recipe = {
        "run": {"output": str(run_dir), "seed": 7},
        "data": {"inputs": ["corpus/*.txt", "hf:roneneldan/TinyStories", str(private / "notes.jsonl")]},
        "model": {"hidden_size": 32, "num_hidden_layers": 2},
        "train": {"seq_len": 64, "lr": 0.003, "max_steps": 20, "shards": str(run_dir / "shards"),
                  "tokenizer": str(run_dir / "tokenizer")},
        "eval": {"data_dir": str(private / "eval-data")},
    }
    (run_dir / "train" / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    rows = [{"kind": "run", "step": 0, "resumed": False, "device_type": "cuda", "device_name": "NVIDIA H100 80GB HBM3",
             "num_processes": 8, "distributed_type": "MULTI_GPU", "mixed_precision": "bf16",
             "versions": {"torch": "2.9.0", "transformers": "5.0.0", "accelerate": "1.11.0", "lmfoundry": "0.1.0"}}]
    rows += [{"kind": "train", "step": s, "loss": 6.0 - 0.2 * s, "lr": 0.003, "grad_norm": 1.0,
              "tokens": 256 * s, "tokens_per_s": 1500.0, "mfu": 0.01, "elapsed_s": 10.0 * s,
              "train_time_s": 5.0 + 10.0 * s} for s in range(1, 21)]
    rows.append({"kind": "val", "step": 20, "val_loss": 2.5, "val_bpb": 1.2345})
    rows.append({"kind": "samples", "step": 10, "samples": [{"prompt": "The", "text": " early"}]})
    rows.append({"kind": "samples", "step": 20, "samples": [{"prompt": "The", "text": " quick fox"},
                                                            {"prompt": "In the", "text": " beginning"}]})
    (run_dir / "train" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "tra')
    (run_dir / "train" / "spikes.jsonl").write_text(
        json.dumps({"step": 12, "data_step": 12, "loss": 9.5, "grad_norm": 40.0, "reason": "loss z-score",
                    "zscore": 8.1, "restored_step": 10, "batches_skipped": 4, "rollback": 1}) + "\n")
    (run_dir / "train" / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 32)
    (run_dir / "eval" / "results.json").write_text(json.dumps({
        "model": str(run_dir / "model"), "lmfoundry_version": "0.1.0", "created": "2026-11-28T12:00:00+00:00",
        "results": {"bpb": {"bits_per_byte": 1.2345, "perplexity": 12.5, "loss": 2.5}, "mmlu": {"acc": 0.25}},
        "details": {"mmlu": {"num_fewshot": 5, "num_questions": 57, "subjects": {}}},
    }))
    return model
