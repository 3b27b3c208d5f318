"""Verbs for the whole journey: ``lmfoundry run RECIPE`` and ``lmfoundry quickstart``."""

from __future__ import annotations

import argparse
from pathlib import Path

QUICKSTART_PROMPTS = ("And God said", "def main(", "In the beginning")


def register(subparsers) -> None:
    run = subparsers.add_parser(
        "run",
        help="curate → tokenizer → tokenize → train → eval → export, from one recipe",
        description="Run every stage of a recipe under one run folder, skipping stages already complete. "
        "Override any recipe field with --section.field VALUE (e.g. --train.max_steps 100).",
    )
    run.add_argument("recipe", help="recipe YAML file, or a built-in name: tiny, small, 1b")
    run.add_argument("--output", metavar="RUN_DIR", help="run folder (default: the recipe's run.output)")
    run.set_defaults(func=_run, accepts_overrides=True)

    quick = subparsers.add_parser(
        "quickstart",
        help="build a tiny model from the built-in corpus on CPU (the 'tiny' recipe), then show it off",
    )
    quick.add_argument("--output", default="runs/quickstart", metavar="RUN_DIR", help="run folder")
    quick.set_defaults(func=_quickstart, accepts_overrides=True)


def _run(args: argparse.Namespace) -> int:
    from lmfoundry.pipeline import format_summary, run_pipeline
    from lmfoundry.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    summary = run_pipeline(recipe, args.output)
    print(format_summary(summary))
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from lmfoundry.pipeline import RunLayout, format_summary, run_pipeline
    from lmfoundry.recipe import load_recipe

    recipe = load_recipe("tiny", args.overrides)
    summary = run_pipeline(recipe, args.output)
    layout = RunLayout(Path(summary["run"]))
    print(format_summary(summary))
    print()
    evaluation = summary["stages"].get("eval", {}).get("result", {})
    model_bpb = evaluation.get("bpb", {}).get("bits_per_byte")
    unigram_bpb = evaluation.get("unigram_baseline", {}).get("bits_per_byte")
    if model_bpb is not None and unigram_bpb is not None:
        print(f"held-out bits per byte: model {model_bpb:.3f}  vs  unigram baseline {unigram_bpb:.3f}")
    print(f"loss curve: {layout.train / 'loss_curve.png'}")
    print(f"model:      {layout.model}  (AutoModelForCausalLM.from_pretrained / pipeline('text-generation'))")
    print("\nsamples:")
    for prompt, text in sample_generations(layout.model, QUICKSTART_PROMPTS).items():
        print(f"--- {prompt!r}\n{text}\n")
    return 0


def sample_generations(model_dir, prompts, max_new_tokens: int = 48, seed: int = 0) -> dict[str, str]:
    """A few sampled continuations through the standard ``pipeline``, as a user would load it."""
    from transformers import pipeline, set_seed

    generator = pipeline("text-generation", model=str(model_dir), device="cpu")
    set_seed(seed)
    outputs = {}
    for prompt in prompts:
        result = generator(prompt, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.8, top_k=50)
        outputs[prompt] = result[0]["generated_text"]
    return outputs
