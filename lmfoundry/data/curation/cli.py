"""``lmfoundry data curate [RECIPE] [--input PATH ...] [--output DIR] [--data.FIELD V ...]``."""

from __future__ import annotations

from lmfoundry.command import Invocation, Option, Verb

VERBS = (
    Verb(
        name="data curate",
        help="read, filter, deduplicate raw sources into clean documents + stats.json",
        description="Read raw sources (text/Markdown, jsonl(.gz), parquet, WARC, code folders or git checkouts, "
        "hf:DATASET), apply quality rules, remove exact and near duplicates, and write clean documents "
        "(NNNNN.jsonl.gz) plus stats.json to --output.",
        run="lmfoundry.data.curation.cli:run",
        sections=("data",),
        options=(Option("--output", "output folder", folder="curate"),),
    ),
)


def run(inv: Invocation) -> int:
    from lmfoundry.data.curation import curate
    from lmfoundry.data.curation.report import format_summary

    report = curate(inv.section("data"), inv.options.output)
    if report.get("complete"):
        print(format_summary(report))
    return 0
