"""``lmfoundry tokenizer train [RECIPE] [--input PATH ...] [--output DIR] [--tokenizer.FIELD V ...]``."""

from __future__ import annotations

import json

from lmfoundry.command import Invocation, Option, Verb

VERBS = (
    Verb(
        name="tokenizer train",
        help="train a byte-level BPE tokenizer on documents",
        description="Train a byte-level BPE (GPT-4 split regex, <|endoftext|> EOS/BOS, <|pad|> PAD) on txt/md/jsonl/"
        "jsonl.gz/parquet files or folders and save it as PreTrainedTokenizerFast files plus report.json "
        "(bytes per token on the held-out documents: those of the shards' val split, tokenize.val_fraction).",
        run="lmfoundry.tokenization.cli:run",
        sections=("tokenizer", "tokenize"),
        options=(
            Option("--input", "files or folders of documents", folder="curate", nargs="+"),
            Option("--output", "folder to write the tokenizer to", folder="tokenizer"),
            Option("--overwrite", "replace a tokenizer already in --output", switch=True),
        ),
    ),
)


def run(inv: Invocation) -> int:
    from lmfoundry.tokenization.stage import build_tokenizer

    inputs = inv.options.input if isinstance(inv.options.input, list) else [inv.options.input]
    split = inv.section("tokenize")
    result = build_tokenizer(inv.section("tokenizer"), inputs, inv.options.output, held_out_fraction=split.val_fraction,
                             held_out_method=split.val_method, overwrite=inv.options.overwrite)
    print(json.dumps(result["report"], indent=2))
    print(f"tokenizer ({result['vocab_size']} tokens) saved to {inv.options.output}")
    return 0
