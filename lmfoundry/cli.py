"""The ``lmfoundry`` command: gathers the verbs each stage package declares in its ``cli.py``.

    lmfoundry <verb> [RECIPE] [--section.field VALUE ...]      (see lmfoundry.command)

Only the chosen verb's parser is built, so ``lmfoundry --help`` imports no stage, torch or
transformers. Every verb runs inside :func:`lmfoundry.errors.run_verb`: an expected failure is one
line and exit 2, a diverged training run exit 3.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from contextlib import nullcontext

from lmfoundry.command import Verb, add_common_arguments, load_runner, parse_invocation
from lmfoundry.errors import run_verb
from lmfoundry.locks import is_rank_zero, output_lock

# The modules that declare verbs (each has VERBS: a tuple of lmfoundry.command.Verb), in --help order.
VERB_MODULES = (
    "lmfoundry.pipeline.cli",
    "lmfoundry.data.curation.cli",
    "lmfoundry.tokenization.cli",
    "lmfoundry.data.shards.cli",
    "lmfoundry.training.cli",
    "lmfoundry.eval.cli",
    "lmfoundry.generation.cli",
    "lmfoundry.hub.cli",
)


def all_verbs() -> dict[str, Verb]:
    verbs: dict[str, Verb] = {}
    for module in VERB_MODULES:
        for verb in importlib.import_module(module).VERBS:
            verbs[verb.name] = verb
    return verbs


def _top_parser(verbs: dict[str, Verb]) -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<18} {verb.help}" for name, verb in verbs.items())
    parser = argparse.ArgumentParser(
        prog="lmfoundry",
        usage="lmfoundry [-v] [--debug] VERB [RECIPE] [--section.field VALUE ...]",
        description="Build a language model from raw text.",
        epilog=f"verbs:\n{listing}\n\n`lmfoundry VERB --help` lists every option of a verb with its type, default and doc.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument("verb", nargs="?", metavar="VERB", help=argparse.SUPPRESS)
    return parser


def _split_verb(argv: list[str], verbs: dict[str, Verb]) -> tuple[str | None, list[str], list[str]]:
    """``(verb name, arguments before it, arguments after it)``; a verb may be two words (``data curate``)."""
    words = [i for i, arg in enumerate(argv) if not arg.startswith("-")]
    if not words:
        return None, argv, []
    first = words[0]
    two = " ".join(argv[first:first + 2])
    if two in verbs:
        return two, argv[:first], argv[first + 2:]
    return argv[first], argv[:first], argv[first + 1:]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbs = all_verbs()
    name, before, after = _split_verb(argv, verbs)
    top = _top_parser(verbs)
    if name is None:
        top.parse_args(before)
        top.print_help()
        return 2
    if name not in verbs:
        groups = sorted({v.split()[0] for v in verbs if " " in v})
        hint = f" ({name} takes a sub-verb: " + ", ".join(v for v in verbs if v.startswith(name + " ")) + ")" \
            if name in groups else ""
        top.error(f"unknown verb {name!r}{hint}; verbs: {', '.join(verbs)}")
    rest = before + after
    return run_verb(lambda: _run(verbs[name], rest), debug="--debug" in rest)


def _run(verb: Verb, argv: list[str]) -> int:
    invocation, args = parse_invocation(verb, argv)
    _configure_logging(args.verbose)
    folder = invocation.locked_folder(verb)
    # The library function the verb calls takes the same lock again (re-entrant in one process); holding it here
    # as well covers the verb's own writes before and after that call.
    lock = output_lock(folder, verb.name, create=verb.lock_creates) if folder else nullcontext()
    try:
        with lock:
            return int(load_runner(verb)(invocation) or 0)
    except OSError as err:
        # A buffered write that hits a full disk reports no file: it was writing the verb's output.
        if err.errno is not None and err.filename is None:
            err.filename = getattr(invocation.options, "output", None)
        raise


def _configure_logging(verbose: bool) -> None:
    # Under `accelerate launch` every rank runs the verb; only rank 0 narrates.
    level = logging.DEBUG if verbose else logging.INFO if is_rank_zero() else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not verbose:
        # huggingface_hub's HTTP client logs every request at INFO: keep that for -v.
        for noisy in ("httpx", "httpx2"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
