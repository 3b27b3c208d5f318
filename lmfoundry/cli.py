"""The `lmfoundry` command: one verb per stage, plus `run` and `quickstart` for the whole journey.

Each stage package owns its verbs: it exposes ``register(subparsers)`` in the module listed below,
adding parsers whose ``func`` default takes the parsed ``argparse.Namespace`` and returns an exit code.
Registration modules import only argparse-level code so that ``lmfoundry --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable

# verb group -> modules that add sub-commands to it (None: top-level verbs)
REGISTRY: dict[str | None, list[str]] = {
    None: [
        "lmfoundry.tokenization.cli",
        "lmfoundry.training.cli",
        "lmfoundry.eval.cli",
        "lmfoundry.hub.cli",
        "lmfoundry.generation_cli",
        "lmfoundry.pipeline_cli",
    ],
    "data": ["lmfoundry.data.curation.cli", "lmfoundry.data.tokenize_cli"],
}
GROUP_HELP = {"data": "curate raw sources and tokenize clean documents into shards"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmfoundry", description="Build a language model from raw text.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for group, modules in REGISTRY.items():
        target = verbs
        if group is not None:
            group_parser = verbs.add_parser(group, help=GROUP_HELP[group])
            target = group_parser.add_subparsers(dest=f"{group}_verb", metavar="VERB", required=True)
        for module in modules:
            importlib.import_module(module).register(target)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Verbs that take a recipe accept `--section.field VALUE` overrides after their own options.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra or not hasattr(args, "overrides"):
        args.overrides = extra
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:
        # huggingface_hub's HTTP client logs every request at INFO: keep that for -v.
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return run_verb(args.func, args)


def run_verb(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a verb; user mistakes and a diverged training run end in one clear line, not a traceback.

    Exit codes: 0 done, 2 bad configuration or input, 3 training stopped after too many rollbacks.
    """
    try:
        return int(func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError) as err:
        print(f"lmfoundry: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from lmfoundry.training.loop import TrainingDivergedError

        if not isinstance(err, TrainingDivergedError):
            raise
        print(f"lmfoundry: training stopped: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
