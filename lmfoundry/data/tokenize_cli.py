"""``lmfoundry data tokenize``: encode clean documents into train/val token shards."""

from __future__ import annotations

import argparse
import json

from lmfoundry.data.executors import EXECUTORS


def register(subparsers) -> None:
    """Add ``tokenize`` to the ``data`` verb group."""
    parser = subparsers.add_parser(
        "tokenize",
        help="tokenize documents into train/val token shards with a manifest",
        description="Encode documents (txt/md/jsonl/jsonl.gz/parquet files or folders) with a trained tokenizer "
        "into datatrove-layout token shards (DIR/train, DIR/val) and DIR/manifest.json.",
    )
    parser.add_argument(
        "--input", nargs="+", required=True, metavar="PATH", help="files or folders of documents"
    )
    parser.add_argument(
        "--tokenizer", required=True, metavar="DIR", help="a folder written by `lmfoundry tokenizer train`"
    )
    parser.add_argument(
        "--output", required=True, metavar="DIR", help="folder for the shards and manifest.json"
    )
    parser.add_argument(
        "--val-fraction", type=float, default=0.01, help="share of documents in val (by text hash)"
    )
    parser.add_argument(
        "--text-field", default="text", help="jsonl/parquet field holding the text (default: text)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="encoding processes (default: every CPU core)"
    )
    parser.add_argument(
        "--shard-tokens", type=int, default=100_000_000, help="tokens per shard (default: 1e8)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace shards made with another tokenizer")
    scale = parser.add_argument_group(
        "datatrove executor",
        "run as datatrove tasks, each writing its own <rank>_... shards, then merge one manifest "
        "(default: one local job with --workers encoding processes)",
    )
    scale.add_argument(
        "--executor", choices=EXECUTORS, help="local, slurm or ray; --workers tasks run at once locally"
    )
    scale.add_argument("--tasks", type=int, help="tasks the input files are split into (default: --workers)")
    scale.add_argument(
        "--executor-options",
        type=json.loads,
        metavar="JSON",
        help='passed to the datatrove executor, e.g. \'{"partition": "cpu", "time": "04:00:00"}\'',
    )
    parser.set_defaults(func=_tokenize)


def _tokenize(args: argparse.Namespace) -> int:
    from lmfoundry.data.shards import TokenizeConfig, tokenize_shards

    config = TokenizeConfig(
        tasks=args.tasks,
        executor=args.executor,
        executor_options=args.executor_options or {},
        workers=args.workers,
        val_fraction=args.val_fraction,
        text_field=args.text_field,
        shard_tokens=args.shard_tokens,
        overwrite=args.overwrite,
    )
    manifest = tokenize_shards(config, args.input, args.tokenizer, args.output)
    if not manifest.get("splits"):
        print(f"tasks submitted (logs: {manifest['logging_dir']}); rerun this command once they finish")
        return 0
    for split, summary in manifest["splits"].items():
        print(
            f"{split}: {summary['documents']} documents, {summary['tokens']} tokens in {summary['shards']} shard(s), "
            f"{summary['bytes_per_token']:.3f} bytes/token"
        )
    print(f"manifest: {args.output}/manifest.json")
    return 0
