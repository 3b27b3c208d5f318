"""``lmfoundry data curate``: the ``data`` section of a recipe, with command-line overrides."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``curate`` to the ``data`` verb group."""
    parser = subparsers.add_parser(
        "curate",
        help="read, filter, deduplicate raw sources into clean documents + stats.json",
        description=(
            "Read raw sources (text/Markdown, jsonl(.gz), parquet, WARC, code folders or git checkouts, "
            "hf:DATASET), apply quality rules, remove exact and near duplicates, and write clean "
            "documents (NNNNN.jsonl.gz) plus stats.json to --output."
        ),
    )
    parser.add_argument("--input", nargs="+", metavar="PATH", help="inputs: PATH, KIND:PATH or hf:DATASET")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--recipe", help="recipe file or built-in name; its `data` section is the config")
    parser.add_argument("--workers", type=int, help="processes running at once")
    parser.add_argument("--tasks", type=int, help="tasks the input is split into")
    parser.add_argument("--text-field", help="text field of jsonl/parquet/Hub records (default: text)")
    parser.add_argument("--output-format", choices=("jsonl", "parquet"))
    parser.add_argument("--exclusion-dir", metavar="DIR", help="also write every dropped document here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmfoundry.data.curation import CurateConfig, CurationError, curate
    from lmfoundry.data.curation.report import format_summary
    from lmfoundry.recipe import load_recipe, parse_section

    config = parse_section(CurateConfig, load_recipe(args.recipe), "data") if args.recipe else CurateConfig()
    overrides = {
        "inputs": args.input,
        "workers": args.workers,
        "tasks": args.tasks,
        "text_field": args.text_field,
        "output_format": args.output_format,
        "exclusion_dir": args.exclusion_dir,
    }
    for field, value in overrides.items():
        if value is not None:
            setattr(config, field, value)
    if args.no_progress:
        config.progress = False
    try:
        report = curate(config, args.output)
    except CurationError as err:
        print(f"lmfoundry: error: {err}")
        return 1
    if report.get("complete"):
        print(format_summary(report))
    return 0
