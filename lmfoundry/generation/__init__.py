"""Sampling for ``lmfoundry generate`` and ``lmfoundry chat``: continue prompts from a model folder, run folder or Hub repo.

Both load with ``AutoModelForCausalLM.from_pretrained``, exactly as a user of the pushed model would
(a folder's own code runs only with ``trust_remote_code``), decode with ``model.generate`` (KV cache on), and stream tokens to
the terminal as they are produced. Temperature 0 is greedy decoding; with ``--seed`` sampling is
reproducible. ``chat`` is plain continuation, not an instruction-tuned dialogue: each reply
continues the whole conversation so far, so a base model keeps the thread.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lmfoundry.generation.config import SamplingSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit device must be available."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (use --device auto or cpu)")
    return torch.device(name)


def load_model(
    name: str, device: str = "auto", revision: str | None = None, *, trust_remote_code: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from a model folder, a run folder (its exported model) or a Hub repo id.

    A Foundry model loads through the classes ``import lmfoundry`` registers; any other code that
    came with the folder or repo runs only with ``trust_remote_code``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import lmfoundry.modeling  # noqa: F401  (registers the Foundry classes, so Foundry folders need no remote code)
    from lmfoundry.hub.artifacts import locate_model_dir
    from lmfoundry.modeling.weights import check_weights

    path = Path(name).expanduser()
    if path.is_dir():
        name = str(locate_model_dir(path)[0])
        check_weights(name)  # a truncated file is one line naming it, not a safetensors traceback
    elif path.is_absolute() or name.startswith(".") or name.count("/") > 1:
        raise FileNotFoundError(f"{name}: no such model folder (and not a Hub repo id 'namespace/name')")
    target = resolve_device(device)
    dtype = torch.bfloat16 if target.type == "cuda" and torch.cuda.is_bf16_supported() else "auto"
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code,
                                                     dtype=dtype)
    except OSError as err:  # transformers' "not a local folder / not on the Hub / missing file" errors
        raise FileNotFoundError(f"cannot load model {name!r}: {err}") from None
    except ValueError as err:
        if "trust_remote_code" not in str(err):
            raise
        raise ValueError(f"{name}: its modeling code is not lmfoundry's; it runs only with --trust-remote-code "
                         "(trust_remote_code=True), after you have read it") from None
    return model.to(target).eval(), tokenizer


def _streamer(tokenizer: PreTrainedTokenizerBase, out: TextIO, pieces: list[str]):
    """A ``TextStreamer`` that writes each piece of decoded text to ``out`` once final, and keeps it."""
    from transformers import TextStreamer

    class Streamer(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            pieces.append(text)
            out.write(text)
            out.flush()

    return Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    settings: SamplingSettings,
    out: TextIO | None = None,
    *,
    warn_on_truncation: bool = True,
) -> str:
    """Continue ``prompt``, streaming the new text to ``out``; return the new text.

    The prompt is preceded by the BOS token (``<|endoftext|>`` for lmfoundry tokenizers) when the
    tokenizer does not add it, because in pretraining every document follows that token: a prompt
    without it looks like the middle of a document.
    """
    import torch
    from transformers import set_seed

    out = out if out is not None else sys.stdout
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    # The continuation gets the length asked for (at most context - 1); the prompt keeps its end.
    context = getattr(model.config, "max_position_embeddings", None)
    max_new = settings.max_new_tokens
    if context is not None:
        if max_new >= context:
            logger.warning("--max-new-tokens %d exceeds the %d-token context; generating %d", max_new, context,
                           context - 1)
            max_new = context - 1
        if len(ids) + max_new > context:
            log = logger.warning if warn_on_truncation else logger.debug
            log("prompt is %d tokens; keeping its last %d to fit the %d-token context", len(ids), context - max_new,
                context)
            ids = ids[len(ids) - (context - max_new):]
    if settings.seed is not None:
        set_seed(settings.seed)
    kwargs = settings.generate_kwargs() | {"max_new_tokens": max_new}
    pieces: list[str] = []
    input_ids = torch.tensor([ids], device=model.device)
    with torch.inference_mode():
        model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            use_cache=True,
            streamer=_streamer(tokenizer, out, pieces),
            **kwargs,
        )
    return "".join(pieces)


class ChatSession:
    """A conversation as one growing text: each reply continues everything said so far.

    Once the conversation outgrows the context, its oldest part silently falls out of the prompt.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, settings: SamplingSettings):
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.history = ""

    def respond(self, line: str, out: TextIO) -> str:
        prompt = self.history + line
        reply = generate(self.model, self.tokenizer, prompt, self.settings, out, warn_on_truncation=False)
        out.write("\n")
        self.history = prompt + reply + "\n"
        return reply

    def reset(self) -> None:
        self.history = ""


def run_chat(session: ChatSession, stdin: TextIO, out: TextIO) -> None:
    """The REPL: a line is a turn; ``/reset`` forgets the conversation, ``/quit`` (or end of input) leaves."""
    out.write("Plain continuation of the conversation so far. /reset forgets it, /quit leaves.\n")
    while True:
        out.write("> ")
        out.flush()
        line = stdin.readline()
        if not line:
            out.write("\n")
            return
        line = line.rstrip("\n")
        if line.strip() == "/quit":
            return
        if line.strip() == "/reset":
            session.reset()
            out.write("(history cleared)\n")
            continue
        if line.strip():
            session.respond(line, out)
