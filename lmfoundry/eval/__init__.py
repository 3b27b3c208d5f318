"""Evaluation: bits per byte / perplexity, MMLU, GSM8K and HumanEval, with a sandbox for generated code.

``evaluate_model`` is what ``lmfoundry eval`` runs; a training loop scores its model in-loop with
``evaluate_bpb(LanguageModel(model, tokenizer), shards_dir)``.
"""

from lmfoundry.eval.harness import evaluate_model
from lmfoundry.eval.lm import LanguageModel
from lmfoundry.eval.sandbox import ExecutionResult, Sandbox, SandboxLimits
from lmfoundry.eval.tasks.bpb import evaluate_bpb

__all__ = ["ExecutionResult", "LanguageModel", "Sandbox", "SandboxLimits", "evaluate_bpb", "evaluate_model"]
