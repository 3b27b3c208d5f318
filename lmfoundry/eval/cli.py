"""``lmfoundry eval MODEL --tasks bpb,mmlu,gsm8k,humaneval``: evaluate a saved model, write results.json."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``eval`` verb."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model: bits per byte, MMLU, GSM8K, HumanEval",
        description="Evaluate a saved model (folder or Hub id) and write results.json and results.md.",
    )
    p.add_argument("model", help="model folder (from save_pretrained) or Hub id")
    p.add_argument("--tasks", required=True, help="comma-separated: bpb, mmlu, gsm8k, humaneval")
    p.add_argument(
        "--data-dir",
        help="local task data: mmlu/{dev,test}/*.csv, gsm8k/{train,test}.jsonl, humaneval/HumanEval.jsonl.gz",
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N items (per subject for MMLU)")
    p.add_argument(
        "--output",
        help="results.json path (default: ./results.json); results.md is written beside it",
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-fewshot", type=int, help="shots (default: MMLU 5, GSM8K 8)")
    p.add_argument("--seed", type=int, default=1234, help="few-shot draw and sampling seed")
    p.add_argument("--bpb-data", help="for bpb: a shards folder, text/jsonl/parquet files, or a dataset id")
    p.add_argument("--tokenizer", help="tokenizer folder, when the model folder has none")
    p.add_argument(
        "--num-samples", type=int, default=1, help="HumanEval samples per problem (pass@k for k <= n)"
    )
    p.add_argument(
        "--temperature", type=float, help="HumanEval sampling temperature (default 0 for n=1, else 0.8)"
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="generation budget (default: GSM8K 256, HumanEval 512, at most half the model's context)",
    )
    p.add_argument("--sandbox-timeout", type=float, default=10.0, help="seconds per HumanEval program")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a Hub model's own modeling code")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmfoundry.eval.harness import evaluate_model

    output = Path(args.output or "results.json")
    results = evaluate_model(
        args.model,
        args.tasks,
        data_dir=args.data_dir,
        limit=args.limit,
        output=output,
        tokenizer=args.tokenizer,
        batch_size=args.batch_size,
        num_fewshot=args.num_fewshot,
        seed=args.seed,
        bpb_data=args.bpb_data,
        num_samples=args.num_samples,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        sandbox_timeout=args.sandbox_timeout,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
    )
    for task, metrics in results["results"].items():
        print(task + ": " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    print(f"wrote {output} and {output.with_suffix('.md')}")
    return 0
