"""``lmfoundry eval [RECIPE] [--model DIR] [--tasks bpb,mmlu,gsm8k,humaneval] [--eval.FIELD V ...]``."""

from __future__ import annotations

from lmfoundry.command import Invocation, Option, Verb

VERBS = (
    Verb(
        name="eval",
        help="evaluate a model: bits per byte, MMLU, GSM8K, HumanEval",
        description="Evaluate a saved model (folder or Hub id) and write results.json and results.md beside it.",
        run="lmfoundry.eval.cli:run",
        sections=("eval",),
        options=(
            Option("--model", "model folder (from save_pretrained), run folder, or Hub id", folder="model"),
            Option("--output", "results.json path; results.md is written beside it", folder="eval_results"),
        ),
    ),
)


def run(inv: Invocation) -> int:
    from lmfoundry.eval.harness import evaluate_model

    results = evaluate_model(inv.options.model, inv.section("eval"), inv.options.output)
    for task, metrics in results["results"].items():
        print(task + ": " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    print(f"wrote {inv.options.output} and {inv.folder('output').with_suffix('.md')}")
    return 0
