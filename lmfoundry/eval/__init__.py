"""Evaluation: bits per byte / perplexity, MMLU, GSM8K and HumanEval, with a sandbox for generated code.

``evaluate_model`` is what ``lmfoundry eval`` runs; a training loop scores its model in-loop with
``evaluate_bpb(LanguageModel(model, tokenizer), shards_dir)``.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

from lmfoundry.lazy import lazy_exports

_EXPORTS = {
    "evaluate_model": "lmfoundry.eval.harness",
    "LanguageModel": "lmfoundry.eval.lm",
    "ExecutionResult": "lmfoundry.eval.sandbox",
    "Sandbox": "lmfoundry.eval.sandbox",
    "SandboxLimits": "lmfoundry.eval.sandbox",
    "evaluate_bpb": "lmfoundry.eval.tasks.bpb",
    "EvalConfig": "lmfoundry.eval.config",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
