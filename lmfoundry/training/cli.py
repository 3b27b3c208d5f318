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
        ),
    ),
)


def run(inv: Invocation) -> int:
    from lmfoundry.training.loop import train

    section = inv.recipe.setdefault("train", {})
    for name in ("shards", "tokenizer"):
        if not section.get(name):
            section[name] = str(getattr(inv.layout, name))
    summary = train(inv.recipe, inv.options.output, resume=True if inv.options.resume else None)
    val = (f"val loss {summary['val_loss']:.4f}, val bpb {summary['val_bpb']:.4f}" if summary["val_loss"] is not None
           else "no val split")
    print(f"trained {summary['steps']} steps ({summary['tokens']:,} tokens); {val}; model saved to {summary['model_dir']}")
    return 0
