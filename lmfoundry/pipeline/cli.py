"""``lmfoundry run [RECIPE] [--output RUN_DIR] [--section.field VALUE ...]`` and ``lmfoundry quickstart``."""

from __future__ import annotations

from pathlib import Path

from lmfoundry.command import Invocation, Option, Verb
from lmfoundry.layout import RunLayout

ALL_SECTIONS = ("run", "data", "tokenizer", "tokenize", "model", "train", "eval", "hub")
QUICKSTART_PROMPTS = ("And God said", "def main(", "In the beginning")
QUICKSTART_FOLDER = "runs/quickstart"  # the run folder unless --output names another

VERBS = (
    Verb(
        name="run",
        help="curate → tokenizer → tokenize → train → eval → export, from one recipe",
        description="Run every stage of a recipe under one run folder (run.output, alias --output), skipping "
        "stages already complete. Any recipe field can be set with --section.field VALUE (e.g. --train.max_steps 100).",
        run="lmfoundry.pipeline.cli:run",
        sections=ALL_SECTIONS,
        options=(Option("--force-recipe-change", "resume training even though model/train fields that change "
                        "results differ from the recorded recipe", switch=True),),
        lock=None,  # run_pipeline locks the run folder and each stage's folder itself
    ),
    Verb(
        name="quickstart",
        help="build a small model from the built-in corpus on CPU in 6 minutes (the 'auto' recipe), then show it off",
        description="`lmfoundry run auto` (a model sized for the built-in corpus and a 6-minute run.budget), then "
        "the held-out bits per byte against a unigram baseline and a few samples through pipeline('text-generation').",
        run="lmfoundry.pipeline.cli:quickstart",
        sections=ALL_SECTIONS,
        takes_recipe=False,
        lock=None,
    ),
)


def run(inv: Invocation) -> int:
    from lmfoundry.pipeline import format_summary, run_pipeline

    print(format_summary(run_pipeline(inv.recipe, force_recipe_change=inv.options.force_recipe_change)))
    return 0


def quickstart(inv: Invocation) -> int:
    from lmfoundry.pipeline import format_summary, run_pipeline
    from lmfoundry.recipe import load_recipe

    recipe = load_recipe("auto")
    recipe["run"]["output"] = QUICKSTART_FOLDER
    for section, body in inv.recipe.items():
        recipe.setdefault(section, {}).update(body)
    summary = run_pipeline(recipe)
    print(format_summary(summary))
    print()
    evaluation = summary["stages"].get("eval", {}).get("result", {})
    model_bpb = evaluation.get("bpb", {}).get("bits_per_byte")
    unigram_bpb = evaluation.get("unigram_baseline", {}).get("bits_per_byte")
    if model_bpb is not None and unigram_bpb is not None:
        print(f"held-out bits per byte: model {model_bpb:.3f}  vs  unigram baseline {unigram_bpb:.3f}")
    layout = RunLayout(Path(summary["run"]))
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
