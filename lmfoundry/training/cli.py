"""``lmfoundry train RECIPE [--output RUN_DIR] [--resume] [--section.field VALUE ...]``.

The same arguments work under ``accelerate launch -m lmfoundry.train`` (see :mod:`lmfoundry.train`).
Options may come before or after the recipe; anything else of the form ``--section.field VALUE``
overrides the recipe.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML file or built-in recipe name (tiny, small, 1b)")
    _add_options(parser)
    parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="--section.field VALUE",
                        help="recipe overrides, e.g. --train.lr 1e-3 --train.max_steps 200")


def _add_options(parser: argparse.ArgumentParser, defaults: argparse.Namespace | None = None) -> None:
    parser.add_argument("--output", default=getattr(defaults, "output", None), metavar="RUN_DIR",
                        help="training run folder (default: RUN/train with RUN = the recipe's run.output, "
                             "the layout of `lmfoundry run`)")
    parser.add_argument("--resume", action="store_true", default=getattr(defaults, "resume", False),
                        help="continue from the newest complete checkpoint (required to exist); without this "
                             "flag a run folder that has checkpoints is resumed too")


def register(subparsers) -> None:
    """Add the ``train`` verb."""
    parser = subparsers.add_parser(
        "train", help="pretrain a model on token shards (Accelerate)",
        description="Pretrain the recipe's model on its token shards. Writes checkpoints/, model/, metrics.jsonl, "
                    "spikes.jsonl, loss_curve.png and recipe.yaml into the run folder.")
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Parse options mixed into the overrides, load the recipe and train.

    Without ``train.shards``/``train.tokenizer``/``--output``, the folders of ``lmfoundry run``'s
    layout under the recipe's ``run.output`` are used (RUN/shards, RUN/tokenizer, RUN/train), so a
    stage can be rerun alone on a pipeline's run folder.
    """
    from pathlib import Path

    from lmfoundry.pipeline import RunLayout
    from lmfoundry.recipe import load_recipe
    from lmfoundry.training.loop import train

    options = argparse.ArgumentParser(add_help=False)
    _add_options(options, args)
    args_after, overrides = options.parse_known_args(args.overrides)
    recipe = load_recipe(args.recipe, overrides)
    run_root = recipe.get("run", {}).get("output")
    layout = RunLayout(Path(run_root)) if run_root else None
    if layout:
        section = recipe.setdefault("train", {})
        section.setdefault("shards", str(layout.shards))
        section.setdefault("tokenizer", str(layout.tokenizer))
    output = args_after.output or (layout.train if layout else None)
    if output is None:
        raise ValueError("no run folder: pass --output RUN_DIR or set run.output in the recipe")
    summary = train(recipe, output, resume=True if args_after.resume else None)
    val = (f"val loss {summary['val_loss']:.4f}, val bpb {summary['val_bpb']:.4f}" if summary["val_loss"] is not None
           else "no val split")
    print(f"trained {summary['steps']} steps ({summary['tokens']:,} tokens); {val}; model saved to {summary['model_dir']}")
    return 0
