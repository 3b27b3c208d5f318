"""``lmfoundry data tokenize [RECIPE] [--input PATH ...] [--tokenizer DIR] [--output DIR] [--tokenize.FIELD V ...]``."""

from __future__ import annotations

from lmfoundry.command import Invocation, Option, Verb

VERBS = (
    Verb(
        name="data tokenize",
        help="tokenize documents into train/val token shards with a manifest",
        description="Encode documents (txt/md/jsonl/jsonl.gz/parquet files or folders) with a trained tokenizer "
        "into datatrove-layout token shards (DIR/train, DIR/val) and DIR/manifest.json.",
        run="lmfoundry.data.shards.cli:run",
        sections=("tokenize",),
        options=(
            Option("--input", "files or folders of documents", folder="curate", nargs="+"),
            Option("--tokenizer", "a folder written by `lmfoundry tokenizer train`", folder="tokenizer"),
            Option("--output", "folder for the shards and manifest.json", folder="shards"),
        ),
    ),
)


def run(inv: Invocation) -> int:
    from lmfoundry.data.shards import tokenize_shards

    inputs = inv.options.input if isinstance(inv.options.input, list) else [inv.options.input]
    manifest = tokenize_shards(inv.section("tokenize"), inputs, inv.options.tokenizer, inv.options.output)
    if not manifest.get("splits"):
        print(f"tasks submitted (logs: {manifest['logging_dir']}); rerun this command once they finish")
        return 0
    for split, summary in manifest["splits"].items():
        print(f"{split}: {summary['documents']} documents, {summary['tokens']} tokens in {summary['shards']} shard(s), "
              f"{summary['bytes_per_token']:.3f} bytes/token")
    print(f"manifest: {inv.options.output}/manifest.json")
    return 0
