"""Time to quality: what a fixed CPU-time budget buys, lmfoundry ``model: auto`` vs a plain script.

Both sides get the same training wall clock and the same torch thread count, train on the same
documents of the built-in corpus (KJV chapters + Python stdlib modules), and are scored in bits per
byte on the same held-out bytes (every 10th document by a hash of its name, never trained on by
either model or tokenizer):

- **ours**: :func:`lmfoundry.training.sizing.plan_auto` sizes the vocabulary, model, batch and lr for
  the corpus and the budget; our BPE (:func:`train_tokenizer`) and shards (:func:`tokenize_shards`);
  :func:`lmfoundry.training.train` with ``model: auto`` and ``train.max_time`` = the budget, so its
  probe, validations, checkpoint and export all count against the budget. The plan's optimizer is
  Muon (``auto``'s default).
- **ref**: the hand-written baseline of issue 15, written down once and not tuned further here:
  ``tokenizers`` byte-level BPE with vocab 1024; ``LlamaForCausalLM`` hidden 128, 4 layers, 4 heads,
  MLP 512, tied embeddings, seq 128; AdamW lr 2e-3, betas (0.9, 0.95), weight decay 0.1, clip 1.0;
  batch 16; the lr follows a linear warmup over the first 2% of the budget then a cosine to 10% keyed
  to elapsed seconds; it stops at the deadline. Its periodic held-out evals pause its clock.
- **ours-adamw**: the same plan with ``optimizer: adamw`` (the adamw vs muon row).

The data stages (tokenizer training, encoding) are outside the budget on both sides; the curation
stage is not run (it would filter the two sides' training text differently). Curves of bpb against
training seconds go to ``time_to_quality.png`` (ours: its own val split, logged by the loop; ref: a
slice of the held-out text).

    python benchmarks/time_to_quality.py                # 185 s per run, 1 thread, 3 runs (~15 min under load)
    python benchmarks/time_to_quality.py --quick        # under a minute
    python benchmarks/time_to_quality.py --budget 10m --threads 2

Prints a table and ``RESULT time_to_quality ours=<bpb> ref=<bpb> ratio=ref/ours target=1.10``
(a ratio above 1: ours reaches fewer bits per byte), then the optimizer row as
``time_to_quality_muon_vs_adamw ours=<muon> ref=<adamw>``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lmfoundry.data.default_corpus import write_bible_chapters, write_stdlib_code
from lmfoundry.data.shards import TokenizeConfig, tokenize_shards
from lmfoundry.tokenization import train_tokenizer
from lmfoundry.training import train, train_sections
from lmfoundry.training.budget import parse_duration
from lmfoundry.training.sizing import AutoPlan, apply_plan, plan_auto

REF = {"vocab": 1024, "hidden": 128, "layers": 4, "heads": 4, "mlp": 512, "seq_len": 128, "batch": 16,
       "lr": 2e-3, "warmup": 0.02, "min_lr": 0.1, "weight_decay": 0.1}


def corpus(root: Path, max_bytes: int | None) -> tuple[Path, list[str]]:
    """Training documents (a jsonl file) and the held-out texts: every 10th document by name hash."""
    write_bible_chapters(root / "books")
    write_stdlib_code(root / "code")
    docs = sorted([*(root / "books").iterdir(), *(root / "code").iterdir()])
    train_docs, held_out, total = [], [], 0
    for path in docs:
        text = path.read_text(encoding="utf-8", errors="replace")
        total += len(text.encode())
        if max_bytes and total > max_bytes:
            break
        (held_out if int(hashlib.sha256(path.name.encode()).hexdigest(), 16) % 10 == 0 else train_docs).append(text)
    out = root / "train.jsonl"
    out.write_text("".join(json.dumps({"text": t}) + "\n" for t in train_docs), encoding="utf-8")
    return out, held_out


@torch.no_grad()
def heldout_bpb(model: torch.nn.Module, encode: Callable[[str], list[int]], texts: list[str], seq_len: int,
                eos_id: int) -> float:
    """Bits per byte of ``texts`` (joined by the end-of-text token): non-overlapping windows of
    ``seq_len + 1`` tokens, all predictions summed, over the texts' UTF-8 bytes."""
    model.eval()
    ids: list[int] = []
    for text in texts:
        ids += [*encode(text), eos_id]
    tokens = torch.tensor(ids)
    windows = (len(tokens) - 1) // seq_len
    nll, count = 0.0, 0
    for start in range(0, windows, 16):
        rows = torch.stack([tokens[w * seq_len: w * seq_len + seq_len + 1] for w in range(start, min(windows, start + 16))])
        logits = model(input_ids=rows[:, :-1]).logits.float()
        nll += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1),
                                                 reduction="sum").item()
        count += rows[:, 1:].numel()
    covered = count / (len(tokens) - 1)  # the tail shorter than a window is not scored: scale the bytes
    model.train()
    return nll / math.log(2) / (sum(len(t.encode()) for t in texts) * covered)


def run_ours(work: Path, train_file: Path, held_out: list[str], plan: AutoPlan, optimizer: str,
             name: str | None = None) -> dict:
    """Our stages with the plan (the same plan for both optimizers: one measurement of the machine)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    budget_s = plan.budget_s
    tok_dir, shards = work / f"tok-{plan.vocab_size}", work / f"shards-{plan.vocab_size}"
    prep = time.perf_counter()
    if not tok_dir.is_dir():
        train_tokenizer([train_file], plan.vocab_size, tok_dir, show_progress=False, held_out_fraction=0.05)
        tokenize_shards(TokenizeConfig(val_fraction=0.05, val_method="documents", workers=1), [train_file], tok_dir,
                        shards, show_progress=False)
    prep = time.perf_counter() - prep
    recipe = apply_plan({"model": "auto", "train": {
        "shards": str(shards), "tokenizer": str(tok_dir), "max_time": budget_s, "optimizer": optimizer,
        "eval_every": max(1, plan.steps // 8), "eval_batches": 4, "checkpoint_every": 0, "sample_every": 0,
        "sample_prompts": [], "report_to": "none", "mixed_precision": "no", "log_every": 1, "seed": 0}}, plan)
    out = work / (name or f"ours-{optimizer}")
    config, model_fields = train_sections(recipe, out)
    summary = train(config, out, model_fields)
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    time_at = {r["step"]: r["train_time_s"] for r in records if r["kind"] == "train"}
    curve = [(time_at.get(r["step"], 0.0), r["val_bpb"]) for r in records if r["kind"] == "val"]
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    return {"bpb": heldout_bpb(model, encode, held_out, plan.seq_len, tokenizer.eos_token_id),
            "train_s": summary["train_time_s"], "steps": summary["steps"], "prep_s": prep, "curve": curve,
            "params": model.num_parameters(), "shape": f"vocab {plan.vocab_size}, hidden {plan.hidden_size} x "
            f"{plan.depth} layers, seq {plan.seq_len}, batch {plan.global_batch_size}", "plan": plan.explain()}


def run_ref(work: Path, train_file: Path, held_out: list[str], budget_s: float) -> dict:
    """The baseline, as a user would write it in 60 lines."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    prep = time.perf_counter()
    texts = [json.loads(line)["text"] for line in train_file.read_text(encoding="utf-8").splitlines()]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=REF["vocab"], special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    eos = tokenizer.token_to_id("<|endoftext|>")
    encode = lambda text: tokenizer.encode(text).ids  # noqa: E731
    ids = []
    for encoding in tokenizer.encode_batch(texts):
        ids += [*encoding.ids, eos]
    data = torch.tensor(ids)
    prep = time.perf_counter() - prep
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=REF["hidden"], intermediate_size=REF["mlp"],
        num_hidden_layers=REF["layers"], num_attention_heads=REF["heads"], max_position_embeddings=REF["seq_len"],
        tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos))
    optimizer = torch.optim.AdamW(model.parameters(), lr=REF["lr"], betas=(0.9, 0.95),
                                  weight_decay=REF["weight_decay"])
    seq, batch, steps, spent, curve, next_eval = REF["seq_len"], REF["batch"], 0, 0.0, [], budget_s / 8
    eval_texts = held_out[::8]  # a slice of the held-out documents, books and code alike
    generator = torch.Generator().manual_seed(0)
    while spent < budget_s:
        started = time.perf_counter()
        progress = spent / budget_s
        factor = progress / REF["warmup"] if progress < REF["warmup"] else \
            REF["min_lr"] + (1 - REF["min_lr"]) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = REF["lr"] * max(factor, 1e-3)
        starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=generator)
        rows = torch.stack([data[s: s + seq + 1] for s in starts])
        loss = model(input_ids=rows[:, :-1], labels=rows[:, :-1].clone()).loss  # HF shifts the labels itself
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        spent += time.perf_counter() - started
        steps += 1
        if spent >= next_eval:  # 8 points over the budget; the clock is paused while it is measured
            curve.append((spent, heldout_bpb(model, encode, eval_texts, seq, eos)))
            next_eval += budget_s / 8
    return {"bpb": heldout_bpb(model, encode, held_out, seq, eos), "train_s": spent, "steps": steps, "prep_s": prep,
            "curve": curve, "params": model.num_parameters(),
            "shape": f"vocab {REF['vocab']}, hidden {REF['hidden']} x {REF['layers']} layers, seq {seq}, batch {batch}"}


def plot(results: dict[str, dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, result in results.items():
        if result["curve"]:
            xs, ys = zip(*result["curve"])
            ax.plot(xs, ys, "o-", ms=3, label=f"{name} (final held-out {result['bpb']:.3f})")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("bits per byte (val)")
    ax.set_title("time to quality, equal CPU time")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 s per run on a 300 KB slice of the corpus")
    parser.add_argument("--budget", default=None, help="training wall clock per run (default 185s; quick: 10s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-bytes", type=int, default=None, help="use only the first N bytes of the corpus")
    parser.add_argument("--no-adamw", action="store_true", help="skip the adamw row")
    parser.add_argument("--png", default=str(Path(__file__).with_suffix(".png")), help="where the bpb-vs-seconds curves go")
    args = parser.parse_args()
    budget_s = parse_duration(args.budget or ("10s" if args.quick else "185s"))
    max_bytes = args.max_bytes or (300_000 if args.quick else None)
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    logging.basicConfig(level=logging.WARNING)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ttq-") as tmp:
        work = Path(tmp)
        train_file, held_out = corpus(work / "corpus", max_bytes)
        print(f"corpus: {train_file.stat().st_size / 1e6:.2f} MB to train on, "
              f"{sum(len(t.encode()) for t in held_out) / 1e6:.2f} MB held out ({len(held_out)} documents); "
              f"budget {budget_s:.0f} s per run, {args.threads} thread(s), load average {load:.1f}", flush=True)
        results = {"ref": run_ref(work, train_file, held_out, budget_s)}
        plan = plan_auto(train_file.stat().st_size, budget_s)
        results["ours"] = run_ours(work, train_file, held_out, plan, plan.train_section()["optimizer"])
        if not args.no_adamw:
            results["ours-adamw"] = run_ours(work, train_file, held_out, plan, "adamw")
    print(results["ours"]["plan"])
    print("\n| run | shape | params | steps | train s | held-out bpb |\n|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['shape']} | {r['params'] / 1e6:.2f}M | {r['steps']} | {r['train_s']:.0f} | {r['bpb']:.3f} |")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (at the start {load:.1f}) on {os.cpu_count()} cores")
    plot(results, Path(args.png))
    ours, ref = results["ours"]["bpb"], results["ref"]["bpb"]
    print(f"RESULT time_to_quality ours={ours:.4f} ref={ref:.4f} ratio={ref / ours:.3f} target=1.10")
    if "ours-adamw" in results:
        adamw = results["ours-adamw"]["bpb"]
        print(f"RESULT time_to_quality_muon_vs_adamw ours={ours:.4f} ref={adamw:.4f} ratio={adamw / ours:.3f} "
              "target=1.00")


if __name__ == "__main__":
    main()
