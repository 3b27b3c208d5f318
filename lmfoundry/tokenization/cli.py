"""``lmfoundry tokenizer train``: train a byte-level BPE tokenizer on documents."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    """Add the ``tokenizer`` verb (sub-verb ``train``)."""
    parser = subparsers.add_parser("tokenizer", help="train a byte-level BPE tokenizer")
    verbs = parser.add_subparsers(dest="tokenizer_verb", metavar="VERB", required=True)
    train = verbs.add_parser(
        "train",
        help="train a tokenizer on txt/md/jsonl/jsonl.gz/parquet files or folders",
        description="Train a byte-level BPE (GPT-4 split regex, <|endoftext|> EOS/BOS, <|pad|> PAD) and save "
        "it as PreTrainedTokenizerFast files plus report.json (bytes per token on held-out documents).",
    )
    train.add_argument(
        "--input", nargs="+", required=True, metavar="PATH", help="files or folders of documents"
    )
    train.add_argument("--output", required=True, metavar="DIR", help="folder to write the tokenizer to")
    train.add_argument("--vocab-size", type=int, required=True, help="rounded up to a multiple of 64")
    train.add_argument(
        "--text-field", default="text", help="jsonl/parquet field holding the text (default: text)"
    )
    train.add_argument(
        "--special-tokens",
        nargs="*",
        default=[],
        metavar="TOKEN",
        help="extra special tokens: presets 'chat' (ChatML) and 'fim', or literal <|name|> tokens",
    )
    train.add_argument("--min-frequency", type=int, default=2, help="minimum pair count for a merge")
    train.add_argument(
        "--max-bytes", type=int, default=None, help="stop reading training text after this many bytes"
    )
    train.add_argument(
        "--held-out-fraction",
        type=float,
        default=0.01,
        help="documents kept out of training for the report (same hash rule as the shards' val split)",
    )
    train.add_argument("--overwrite", action="store_true", help="replace a tokenizer already in --output")
    train.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from lmfoundry.tokenization.train import train_tokenizer

    tokenizer = train_tokenizer(
        args.input,
        args.vocab_size,
        args.output,
        text_field=args.text_field,
        extra_special_tokens=args.special_tokens,
        min_frequency=args.min_frequency,
        max_bytes=args.max_bytes,
        held_out_fraction=args.held_out_fraction,
        overwrite=args.overwrite,
    )
    with open(f"{args.output}/report.json", encoding="utf-8") as f:
        print(json.dumps(json.load(f), indent=2))
    print(f"tokenizer ({len(tokenizer)} tokens) saved to {args.output}")
    return 0
