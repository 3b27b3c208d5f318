"""``lmfoundry train [RECIPE] [--output DIR] [--resume] [--train.FIELD V ...] [--model.FIELD V ...]``.

Under several processes: ``accelerate launch [--config_file F] -m lmfoundry train RECIPE ...``; every
process runs the same verb and Accelerate wires them together (DDP, FSDP or DeepSpeed).
"""

from __future__ import annotations

from lmfoundry.command import Invocation, Option, Verb

VERBS = (
    Verb(
        name="train",
        help="pretrain a model on token shards (Accelerate)",
        description="Pretrain the recipe's model on its token shards (train.shards, default RUN/shards, with "
        "train.tokenizer, default RUN/tokenizer). Writes checkpoints/, model/, metrics.jsonl, spikes.jsonl, "
        "loss_curve.png and recipe.yaml into the run folder. Several processes: "
        "accelerate launch [--config_file F] -m lmfoundry train RECIPE ...",
        run="lmfoundry.training.cli:run",
        sections=("run", "model", "train"),
        options=(
            Option("--output", "training run folder", folder="train"),
            Option("--resume", "continue from the newest complete checkpoint (required to exist); without this "
                   "flag a run folder that has checkpoints is resumed too", switch=True),
            Option("--force-recipe-change", "resume even though model/train fields that change results differ from "
                   "the recorded recipe", switch=True),
        ),
    ),
    Verb(
        name="plan",
        help="estimate a recipe's parameters, FLOPs, steps, memory per device and time on GPUs",
        description="Parameters, FLOPs per token, tokens and steps, memory per device (weights, gradients and AdamW "
        "state under the sharding; activations with and without checkpointing) and the time at the stated MFU. "
        "An estimate, checked against measured peak memory on CPU for small shapes (tests/test_plan.py).",
        run="lmfoundry.training.cli:run_plan",
        sections=("model", "train"),
        options=(
            Option("--gpus", "devices the run trains on", default=1, kind=int),
            Option("--gpu", "device kind: h100, h200, b200, a100, a100-40gb, l40s, a10g, l4, mi300x", default="h100"),
            Option("--mfu", "model FLOPs utilisation to assume", default=0.4, kind=float),
            Option("--sharding", "ddp, zero2, zero3 or fsdp", default="ddp"),
        ),
        lock=None,
    ),
)


def run(inv: Invocation) -> int:
    from lmfoundry.locks import is_rank_zero
    from lmfoundry.training.loop import train
    from lmfoundry.training.sections import train_sections

    section = inv.recipe.setdefault("train", {})
    for name in ("shards", "tokenizer"):
        if not section.get(name):
            section[name] = str(getattr(inv.layout, name))
    config, model = train_sections(inv.recipe, inv.options.output)
    summary = train(config, inv.options.output, model, resume=True if inv.options.resume else None,
                    force_recipe_change=inv.options.force_recipe_change)
    val = (f"val loss {summary['val_loss']:.4f}, val bpb {summary['val_bpb']:.4f}" if summary["val_loss"] is not None
           else "no val split")
    if is_rank_zero():  # under accelerate launch every rank gets the summary; one prints it
        print(f"trained {summary['steps']} steps ({summary['tokens']:,} tokens); {val}; model saved to "
              f"{summary['model_dir']}")
    return 0


def run_plan(inv: Invocation) -> int:
    from lmfoundry.training.plan import format_plan, plan

    o = inv.options
    print(format_plan(plan(inv.recipe, gpus=o.gpus, gpu=o.gpu, mfu=o.mfu, sharding=o.sharding)))
    return 0
