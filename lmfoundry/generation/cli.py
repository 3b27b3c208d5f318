"""``lmfoundry generate [RECIPE] [--model DIR] --prompt TEXT`` and ``lmfoundry chat [RECIPE] [--model DIR]``."""

from __future__ import annotations

import sys

from lmfoundry.command import Invocation, Option, Verb

_MODEL = Option("--model", "model folder, run folder, or Hub repo id", folder="model")
VERBS = (
    Verb(
        name="generate",
        help="continue a prompt with a model, streaming to the terminal",
        description="Continue --prompt with a model folder, run folder or Hub repo id.",
        run="lmfoundry.generation.cli:run_generate",
        sections=("generate",),
        options=(_MODEL, Option("--prompt", "text to continue")),
        lock=None,
    ),
    Verb(
        name="chat",
        help="interactive continuation REPL (/reset, /quit)",
        description="Each line you type is appended to the conversation and the model continues it.",
        run="lmfoundry.generation.cli:run_chat_verb",
        sections=("generate",),
        options=(_MODEL,),
        lock=None,
    ),
)


def _load(inv: Invocation):
    from lmfoundry.generation import load_model

    settings = inv.section("generate")
    model, tokenizer = load_model(inv.options.model, settings.device, settings.revision,
                                  trust_remote_code=settings.trust_remote_code)
    return settings, model, tokenizer


def run_generate(inv: Invocation) -> int:
    from lmfoundry.generation import generate

    if inv.options.prompt is None:
        raise ValueError("--prompt: expected the text to continue")
    settings, model, tokenizer = _load(inv)
    sys.stdout.write(inv.options.prompt)
    generate(model, tokenizer, inv.options.prompt, settings, sys.stdout)
    sys.stdout.write("\n")
    return 0


def run_chat_verb(inv: Invocation) -> int:
    from lmfoundry.generation import ChatSession, run_chat

    settings, model, tokenizer = _load(inv)
    run_chat(ChatSession(model, tokenizer, settings), sys.stdin, sys.stdout)
    return 0
