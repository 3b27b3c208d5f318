"""Training-loop overhead: lmfoundry's loop vs a minimal hand-written PyTorch loop.

Both train the same FoundryForCausalLM (same config, same seed) on the same token shards read
through the same ``PretrainDataset``, for the same steps, in one process, alternating runs to cancel
machine noise. Ours adds Accelerate, the lr schedule, the global loss reduction, spike detection,
metrics.jsonl, tqdm and tracker calls; the reference is forward / backward / clip / AdamW step.
Tokens/s counts the step loop only (not start-up, the final validation or the export), for both.

    python benchmarks/train_speed.py            # ~5 min: hidden 128, 4 layers, seq 128, 8 x 128 tokens/step
    python benchmarks/train_speed.py --quick    # under a minute

Prints a table and ``RESULT train_loop_tokens_per_s ours=… ref=… ratio=… target=0.95``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from pathlib import Path

import torch

from lmfoundry.data.dataset import PretrainDataset
from lmfoundry.data.default_corpus import bible_jsonl_path
from lmfoundry.data.shards import TokenizeConfig, tokenize_shards
from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
from lmfoundry.tokenization import train_tokenizer
from lmfoundry.training import TrainConfig, train
from lmfoundry.training.validation import lm_loss


def make_data(root: Path, verses: int) -> tuple[Path, Path]:
    """A real tokenizer and real shards from KJV verses (8 verses per document)."""
    lines = bible_jsonl_path().read_text(encoding="utf-8").splitlines()[:verses]
    texts = [json.loads(line)["text"] for line in lines]
    corpus = root / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": " ".join(texts[i:i + 8])}) + "\n"
                              for i in range(0, len(texts), 8)), encoding="utf-8")
    train_tokenizer([corpus], 1024, root / "tokenizer", show_progress=False)
    config = TokenizeConfig(val_fraction=0.05, workers=1)
    tokenize_shards(config, [corpus], root / "tokenizer", root / "shards", show_progress=False)
    return root / "tokenizer", root / "shards"


def reference_loop(model_fields: dict, shards: Path, steps: int, seq_len: int, batch: int, lr: float,
                   seed: int) -> float:
    """The minimal loop: returns tokens/s over ``steps`` steps."""
    torch.manual_seed(seed)
    model = FoundryForCausalLM(FoundryConfig(**model_fields))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    data = PretrainDataset(shards, "train", seq_len=seq_len, micro_batch_size=batch, seed=seed)
    started = time.perf_counter()
    for step in range(steps):
        loss = lm_loss(model, data.get_batch(step, 0))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
    return steps * batch * seq_len / (time.perf_counter() - started)


def our_loop(model_fields: dict, tokenizer: Path, shards: Path, out: Path, steps: int, seq_len: int, batch: int,
             lr: float, seed: int) -> float:
    config = TrainConfig(shards=str(shards), tokenizer=str(tokenizer), seq_len=seq_len, micro_batch_size=batch,
                         global_batch_size=batch, max_steps=steps, lr=lr, warmup_steps=2, seed=seed, report_to="none",
                         sample_prompts=[], checkpoint_every=0, eval_every=0, eval_batches=1, log_every=1)
    return train(config, out, model_fields)["tokens_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller model and fewer steps (< 1 minute)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="alternating runs of each loop")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    hidden, layers, seq_len, batch = (64, 2, 64, 8) if args.quick else (128, 4, 128, 8)
    steps = args.steps or (20 if args.quick else 60)
    repeats = args.repeats or (2 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        root = Path(tmp)
        tokenizer, shards = make_data(root, 3000 if args.quick else 8000)
        vocab = json.loads((shards / "manifest.json").read_text())["vocab_size"]
        fields = {"vocab_size": vocab, "hidden_size": hidden, "intermediate_size": 4 * hidden,
                  "num_hidden_layers": layers, "num_attention_heads": 4, "max_position_embeddings": seq_len}
        ours, ref = [], []
        for repeat in range(repeats):
            ref.append(reference_loop(fields, shards, steps, seq_len, batch, 1e-3, seed=0))
            ours.append(our_loop(fields, tokenizer, shards, root / f"run-{repeat}", steps, seq_len, batch, 1e-3,
                                 seed=0))
    best_ours, best_ref = max(ours), max(ref)
    params = FoundryForCausalLM(FoundryConfig(**fields)).num_parameters()
    print(f"\nmodel: hidden {hidden}, {layers} layers, {params / 1e6:.2f}M parameters; {steps} steps of "
          f"{batch} x {seq_len} tokens; {args.threads} thread(s); best of {repeats}")
    print(f"{'loop':<28}{'tokens/s (each run)':<40}{'best':>10}")
    print(f"{'lmfoundry train()':<28}{', '.join(f'{x:,.0f}' for x in ours):<40}{best_ours:>10,.0f}")
    print(f"{'minimal PyTorch loop':<28}{', '.join(f'{x:,.0f}' for x in ref):<40}{best_ref:>10,.0f}")
    ratio = best_ours / best_ref if best_ref and not math.isnan(best_ref) else float("nan")
    print(f"RESULT train_loop_tokens_per_s ours={best_ours:.1f} ref={best_ref:.1f} ratio={ratio:.3f} target=0.95")


if __name__ == "__main__":
    main()
