"""A causal LM and its tokenizer, with the two operations every task needs: scoring and generating.

Scoring follows lm-eval-harness's ``HFLM`` exactly (trailing context spaces move to the
continuation, the pair is encoded whole and split at the context's length, inputs are
left-truncated to the model's window), so our MMLU numbers and lm-eval's agree on the same model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from lmfoundry.modeling.weights import check_weights

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
DTYPES: dict[str, str | torch.dtype] = {
    "auto": "auto",
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


class LanguageModel:
    """Batched log-likelihood and generation over a ``PreTrainedModel`` + tokenizer."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int = 8,
        max_length: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length or int(getattr(model.config, "max_position_embeddings", 2048))
        self.device = next(model.parameters()).device
        self.name = str(getattr(model, "name_or_path", "") or type(model).__name__)

    @classmethod
    def load(
        cls,
        model: str | Path | PreTrainedModel,
        tokenizer: str | Path | PreTrainedTokenizerBase | None = None,
        batch_size: int = 8,
        device: str | None = None,
        trust_remote_code: bool = False,
        dtype: str = "auto",
    ) -> LanguageModel:
        """Load from a saved folder or a Hub id (the tokenizer defaults to the model's own).

        ``dtype`` ``auto`` keeps the checkpoint's dtype on every device, as lm-eval's ``hf`` model
        does (a bfloat16 cast would change the numbers); ``float32``, ``bfloat16``, ``float16`` cast.
        """
        if isinstance(model, PreTrainedModel):
            source = tokenizer or model.name_or_path
        else:
            source = tokenizer or model
            _check_tokenizer_present(model, tokenizer)
        if isinstance(source, PreTrainedTokenizerBase):
            tok = source
        else:
            if not source:
                raise ValueError("an in-memory model needs a tokenizer (a tokenizer or its folder)")
            tok = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
        if not isinstance(model, PreTrainedModel):
            if dtype not in DTYPES:
                raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            check_weights(model)  # a truncated file is one line naming it, not a safetensors traceback
            try:
                model = AutoModelForCausalLM.from_pretrained(
                    str(model), dtype=DTYPES[dtype], trust_remote_code=trust_remote_code
                )
            except ValueError as err:
                if "trust_remote_code" not in str(err):
                    raise
                raise ValueError(f"{model}: its modeling code is not lmfoundry's; it runs only with "
                                 "--trust-remote-code (trust_remote_code=True), after you have read it") from None
            model.to(device)
        return cls(model, tok, batch_size=batch_size)

    @property
    def dtype(self) -> str:
        """The parameters' dtype (``float32``, ``bfloat16``…), recorded with every result."""
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    # ---- tokenization (lm-eval-harness conventions) -------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids as ``HFLM.tok_encode``: the tokenizer's own default special tokens."""
        return list(self.tokenizer(text)["input_ids"])

    @property
    def prefix_token_id(self) -> int:
        """The token that conditions an empty context: BOS, else EOS (as lm-eval)."""
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if not context:  # condition on the prefix token, unless the continuation starts with it
            cont = list(self.tokenizer(continuation, add_special_tokens=False)["input_ids"])
            return (
                (cont[:1], cont[1:]) if cont[:1] == [self.prefix_token_id] else ([self.prefix_token_id], cont)
            )
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        whole = self.encode(context + continuation)
        context_len = len(self.encode(context))
        return whole[:context_len], whole[context_len:]

    # ---- scoring -------------------------------------------------------------------------------
    @torch.no_grad()
    def token_logprobs(
        self,
        sequences: Sequence[list[int]],
        score_from: Sequence[int],
        final_candidates: Sequence[list[int]] | None = None,
    ) -> list[torch.Tensor]:
        """Log-probabilities of ``seq[i]`` for ``i >= score_from`` (one tensor per sequence).

        With ``final_candidates``, sequence j's last token is swapped for each of
        ``final_candidates[j]`` in turn and the tensor holds the summed log-probability of the scored
        tokens per candidate: one forward pass scores every answer letter of a multiple-choice
        question. Each sequence must fit ``max_length + 1`` tokens (the last is only a target).
        Batches are sorted by length to limit padding.
        """
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        out: list[torch.Tensor] = [torch.empty(0)] * len(sequences)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with _eval_mode(self.model):
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                inputs = [sequences[i][:-1] for i in idx]
                width = max(len(x) for x in inputs)
                batch = torch.full((len(idx), width), pad, dtype=torch.long)
                for row, ids in enumerate(inputs):
                    batch[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                logits = self.model(batch.to(self.device)).logits
                for row, i in enumerate(idx):
                    targets = torch.tensor(sequences[i][1:], dtype=torch.long, device=logits.device)
                    first = max(score_from[i] - 1, 0)
                    logprobs = F.log_softmax(logits[row, first : len(targets)].float(), dim=-1)
                    picked = logprobs.gather(-1, targets[first:, None])[:, 0]
                    if final_candidates is not None:
                        candidates = torch.tensor(final_candidates[i], dtype=torch.long, device=logits.device)
                        picked = picked[:-1].sum() + logprobs[-1, candidates]
                    out[i] = picked.cpu()
        return out

    def loglikelihood(self, requests: Sequence[tuple[str, str]], desc: str = "scoring") -> list[float]:
        """Sum of log P(continuation | context) for each ``(context, continuation)`` pair.

        Requests that differ only in their last token (the choices of a multiple-choice question)
        share one forward pass.
        """
        groups: dict[tuple[tuple[int, ...], int], list[tuple[int, int]]] = {}
        for n, (context, continuation) in enumerate(requests):
            ctx, cont = self.encode_pair(context, continuation)
            if not cont:
                raise ValueError(f"continuation {continuation!r} encodes to no tokens")
            seq = (ctx + cont)[-(self.max_length + 1) :]
            groups.setdefault((tuple(seq[:-1]), len(cont)), []).append((n, seq[-1]))
        keys = list(groups)
        results = [0.0] * len(requests)
        chunk = self.batch_size * 16
        for start in tqdm(range(0, len(keys), chunk), desc=desc, leave=False, unit="chunk"):
            part = keys[start : start + chunk]
            scores = self.token_logprobs(
                [[*prefix, groups[(prefix, n)][0][1]] for prefix, n in part],
                [len(prefix) + 1 - n for prefix, n in part],
                final_candidates=[[last for _, last in groups[key]] for key in part],
            )
            for key, per_candidate in zip(part, scores):
                for (n, _), score in zip(groups[key], per_candidate.tolist()):
                    results[n] = score
        return results

    # ---- generation ----------------------------------------------------------------------------
    def new_tokens(self, requested: int | None, default: int) -> int:
        """A task's generation budget: ``requested``, else lm-eval's ``default``; a default that
        would fill the whole context (where lm-eval refuses to run) becomes half the context, so a
        model with a short context (a 256-token tiny model) still sees its prompts."""
        if requested:
            return requested
        return default if default < self.max_length else self.max_length // 2

    def stop_sequences(self, stop: Sequence[str]) -> list[str]:
        """A task's stop sequences plus the EOS token's text, as lm-eval's ``handle_stop_sequences``."""
        out = list(stop)
        if self.tokenizer.eos_token_id is not None:
            eos = self.tokenizer.decode([self.tokenizer.eos_token_id], skip_special_tokens=False)
            if eos and eos not in out:
                out.append(eos)
        return out

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        seed: int = 0,
        desc: str = "generating",
    ) -> list[str]:
        """Complete each prompt (left-padded batches), cut at the first stop sequence.

        A prompt longer than the context leaves beside ``max_new_tokens`` keeps its end (with a
        warning); ``max_new_tokens`` must be below the context. Stop sequences count only in the
        generated text. Greedy when ``temperature`` is 0. Sampling is seeded per batch from ``seed``,
        so a run is reproducible for a given seed and batch size.
        """
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if max_new_tokens >= self.max_length:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's "
                f"{self.max_length}-token context; ask for fewer new tokens (--max-new-tokens)"
            )
        budget = self.max_length - max_new_tokens
        encoded = [self.encode(p) for p in prompts]
        too_long = sum(len(ids) > budget for ids in encoded)
        if too_long:
            logger.warning(
                "%s: %d of %d prompts are longer than the %d tokens a %d-token context leaves beside "
                "%d new tokens; their beginnings are cut off",
                desc,
                too_long,
                len(prompts),
                budget,
                self.max_length,
                max_new_tokens,
            )
        # longest first, ties by prompt text: lm-eval's order, so the batches (and their padding) match
        order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), prompts[i]))
        encoded = [ids[-budget:] for ids in encoded]
        outputs: list[str] = [""] * len(prompts)
        batches = enumerate(tqdm(range(0, len(order), self.batch_size), desc=desc, leave=False, unit="batch"))
        for batch_no, start in batches:
            idx = order[start : start + self.batch_size]
            width = max(len(encoded[i]) for i in idx)
            input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids = encoded[i]
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                mask[row, width - len(ids) :] = 1
            sampling = temperature > 0
            devices = [self.device] if self.device.type == "cuda" else []
            # a private RNG stream: the caller's (a training loop's) random state is left as it was
            with _eval_mode(self.model), torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed * 1_000_003 + batch_no)
                generated = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    max_new_tokens=max_new_tokens,
                    do_sample=sampling,
                    temperature=temperature if sampling else None,
                    top_p=None,
                    top_k=None,
                    stopping_criteria=StoppingCriteriaList(
                        [StopInGenerated(tok, stop, width)] if stop else []
                    ),
                    pad_token_id=pad,
                    eos_token_id=tok.eos_token_id,
                )
            for row, i in enumerate(idx):
                text = tok.decode(generated[row, width:], skip_special_tokens=True)
                outputs[i] = truncate_at_stop(text, stop)
        return outputs


class StopInGenerated(StoppingCriteria):
    """Stop a row once its generated text contains a stop sequence, as lm-eval's
    ``MultiTokenEOSCriteria``: only tokens after the prompt count. (``generate(stop_strings=...)``
    also matches a sequence that begins in the prompt, e.g. a HumanEval prompt's final newline and
    a generated ``def``, and stopped generation where :func:`truncate_at_stop` cuts nothing.)"""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop: Sequence[str], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stop = list(stop)
        self.prompt_width = prompt_width
        # every token but a special one decodes to at least one byte, so a stop sequence that the
        # newest token completes lies within its byte length of tokens from the end
        self.lookback = max(len(s.encode()) for s in self.stop) + 1

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        tails = self.tokenizer.batch_decode(input_ids[:, self.prompt_width :][:, -self.lookback :])
        return torch.tensor([any(s in t for s in self.stop) for t in tails], device=input_ids.device)


@contextlib.contextmanager
def _eval_mode(model: PreTrainedModel) -> Iterator[None]:
    """Evaluation mode (no dropout) for the duration, then the caller's mode again: a training loop
    can score its model in-loop without the evaluation flipping it out of training mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to (not including) the earliest occurrence of any stop sequence."""
    cut = min((pos for s in stop if (pos := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def _check_tokenizer_present(model: str | Path, tokenizer: object) -> None:
    """A local model folder without tokenizer files is a clear user error, not a deep traceback."""
    path = Path(model)
    if tokenizer is None and path.is_dir() and not any((path / f).exists() for f in TOKENIZER_FILES):
        raise FileNotFoundError(
            f"{path} has no tokenizer (expected one of {', '.join(TOKENIZER_FILES)}); save the tokenizer "
            f"next to the model (tokenizer.save_pretrained) or pass a tokenizer folder"
        )
    if not path.exists() and (str(model).startswith((".", "/")) or str(model).count("/") > 1):
        raise FileNotFoundError(f"model folder not found: {path}")
