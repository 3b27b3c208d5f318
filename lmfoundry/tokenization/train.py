"""Training a byte-level BPE tokenizer and saving it as ``PreTrainedTokenizerFast`` files.

The pipeline is the GPT-4 one: split text with the ``cl100k`` regex (contractions, letters, numbers
in groups of at most three, punctuation runs, whitespace), map bytes to printable characters
(``ByteLevel(use_regex=False)``), and learn merges over those pieces. Every byte is in the base
alphabet, so any string encodes without an unknown token and decodes back exactly.

Special tokens come first in the vocabulary: ``<|endoftext|>`` (id 0) is EOS, BOS and the document
separator, ``<|pad|>`` (id 1) pads; optional presets add chat (ChatML) or fill-in-the-middle tokens.
The vocabulary is rounded up to a multiple of 64 (the embedding matrix then tiles well on GPUs); when
the corpus is too small to learn that many merges the remainder is filled with ``<|reserved_N|>``
special tokens, so ``len(tokenizer)`` is always the model's ``vocab_size``.

Text that spells a special token literally (``"<|endoftext|>"`` inside a web page) is matched as that
special token by the Hugging Face tokenizer, as with GPT-2 and Llama 3, which chat templates rely on;
the shard writer instead encodes documents as ordinary text, so a document can never forge a
document boundary. Both ways decode back to the original string.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from lmfoundry.locks import output_lock
from lmfoundry.tokenization.holdout import ValSplit, val_split_for
from lmfoundry.tokenization.report import tokenizer_report, write_report
from lmfoundry.tokenization.sources import iter_documents, resolve_inputs, split_long, text_of

logger = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
# GPT-4 (cl100k_base) pre-tokenization regex, as used by Llama 3's tokenizer.json.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL_TOKEN_PRESETS: dict[str, list[str]] = {
    "chat": ["<|im_start|>", "<|im_end|>"],
    "fim": ["<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>"],
}
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
VOCAB_MULTIPLE = 64
# Held-out documents for the compression report: at most this many characters are kept in memory.
_REPORT_CHARS = 4_000_000


def round_vocab_size(vocab_size: int) -> int:
    """Round up to a multiple of 64."""
    return -(-vocab_size // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def expand_special_tokens(extra: Iterable[str]) -> list[str]:
    """The full list of special tokens: EOS, PAD, then presets (``chat``, ``fim``) and literal tokens."""
    tokens = [EOS_TOKEN, PAD_TOKEN]
    for item in extra:
        for token in SPECIAL_TOKEN_PRESETS.get(item, [item]):
            if not (token.startswith("<|") and token.endswith("|>")):
                raise ValueError(
                    f"special token {token!r}: expected a preset ({', '.join(SPECIAL_TOKEN_PRESETS)}) "
                    "or a token of the form <|name|>"
                )
            if token not in tokens:
                tokens.append(token)
    return tokens


def build_backend() -> Tokenizer:
    """An untrained tokenizer with this module's normalization-free byte-level BPE pipeline."""
    # ignore_merges: a pre-token that is itself in the vocabulary becomes that token directly, as in
    # tiktoken and Llama 3; this is what lets the tiktoken fast path reproduce our ids exactly.
    tokenizer = Tokenizer(models.BPE(ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def train_tokenizer(
    source: str | Path | Iterable[str | Path] | Iterable[str] | Any,
    vocab_size: int,
    output_dir: str | Path,
    *,
    text_field: str = "text",
    extra_special_tokens: Iterable[str] = (),
    min_frequency: int = 2,
    max_bytes: int | None = None,
    held_out_fraction: float = 0.01,
    held_out_method: str = "auto",
    overwrite: bool = False,
    show_progress: bool = True,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``source`` and save it to ``output_dir``.

    ``source`` is a file or folder path, a list of them (txt/md/jsonl/jsonl.gz/parquet), a
    ``datasets.Dataset`` (column ``text_field``), or any iterable of strings. Input is streamed;
    ``max_bytes`` caps the UTF-8 bytes of training text. The text the shards' ``val`` split will
    hold (``held_out_fraction`` and ``held_out_method``, resolved by
    :func:`~lmfoundry.tokenization.holdout.val_split_for` exactly as the shard stage resolves its
    ``val_fraction`` and ``val_method`` on the same files) is not trained on; it measures
    compression in ``report.json``. ``output_dir`` is locked while it trains
    (:func:`lmfoundry.locks.output_lock`): another process on it stops with one line.
    """
    if vocab_size < 257:
        raise ValueError(f"vocab_size must be at least 257 (256 bytes + special tokens), got {vocab_size}")
    output_dir = Path(output_dir)
    with output_lock(output_dir, "train_tokenizer"):
        if (output_dir / "tokenizer.json").exists() and not overwrite:
            raise FileExistsError(
                f"{output_dir} already holds a tokenizer; pass overwrite=True (--overwrite) to replace it"
            )
        specials = expand_special_tokens(extra_special_tokens)
        target = round_vocab_size(vocab_size)
        if target < 256 + len(specials):
            raise ValueError(
                f"vocab_size {vocab_size} leaves no room beyond 256 bytes and {len(specials)} special tokens"
            )

        split = _held_out_split(source, text_field, held_out_fraction, held_out_method)
        stream = _TrainingStream(_iter_source(source, text_field), max_bytes, split)

        backend = build_backend()
        trainer = trainers.BpeTrainer(
            vocab_size=target,
            min_frequency=min_frequency,
            special_tokens=[AddedToken(t, special=True, normalized=False) for t in specials],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
        backend.train_from_iterator(iter(stream), trainer=trainer)
        logger.info("trained on %d documents, %.1f MB", stream.documents, stream.bytes / 1e6)
        if stream.documents == 0:
            raise ValueError(f"{_describe(source)}: no training text: the source yielded no documents "
                             "(all held out or empty)")

        learned = backend.get_vocab_size()
        if learned < target:
            raise ValueError(
                f"{_describe(source)}: the text supports only {learned} of the {target} tokens asked for "
                f"(vocab_size {vocab_size}); lower vocab_size or give more text"
            )
        final = round_vocab_size(learned)
        reserved = [f"<|reserved_{i}|>" for i in range(final - learned)]
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in reserved])

        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token=EOS_TOKEN,
            eos_token=EOS_TOKEN,
            pad_token=PAD_TOKEN,
            extra_special_tokens=specials[2:],
            clean_up_tokenization_spaces=False,
        )
        if "<|im_start|>" in specials:
            tokenizer.chat_template = CHATML_TEMPLATE

        report = tokenizer_report(tokenizer, stream.held_out or stream.sample)
        report["held_out"] = bool(stream.held_out)
        report["held_out_split"] = split.describe()
        report["training_documents"] = stream.documents
        report["training_bytes"] = stream.bytes
        _save_atomically(tokenizer, report, output_dir)
        logger.info(
            "tokenizer saved to %s: vocab %d, %.3f bytes/token on %s text",
            output_dir,
            len(tokenizer),
            report["bytes_per_token"],
            "held-out" if stream.held_out else "training",
        )
        return tokenizer


def _iter_source(source: Any, text_field: str) -> Iterator[str]:
    """Documents from paths, a ``datasets`` dataset (also streaming), or an iterable of strings or
    records (mappings holding ``text_field``)."""
    if isinstance(source, (str, Path)):
        yield from iter_documents(resolve_inputs(source), text_field)
        return
    column_names = getattr(source, "column_names", None)
    if column_names and hasattr(source, "select_columns"):  # datasets.Dataset / IterableDataset
        if text_field not in column_names:
            raise ValueError(f"dataset has no column {text_field!r} (columns: {', '.join(column_names)})")
        for batch in source.select_columns([text_field]).iter(batch_size=1000):
            yield from batch[text_field]
        return
    items = iter(source)
    first = next(items, None)
    if first is None:
        return
    if isinstance(first, Path) or (isinstance(first, str) and _looks_like_path(first)):
        yield from iter_documents(resolve_inputs([first, *items]), text_field)
        return
    for number, item in enumerate(itertools.chain([first], items), 1):
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            yield text_of(item, text_field, f"source item {number}")
        else:
            raise ValueError(f"source item {number} is a {type(item).__name__}, expected a str or a record")


def _describe(source: Any) -> str:
    """How an error names the training source: its paths, or what kind of object it is."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (list, tuple)) and source and all(isinstance(item, Path) for item in source):
        return ", ".join(map(str, source))
    return "training text"


def _held_out_split(source: Any, text_field: str, fraction: float, method: str) -> ValSplit:
    """The validation split for ``source``, resolved on its files as the shard stage resolves it
    (other sources: ``auto`` means whole documents)."""
    files = None
    if isinstance(source, (str, Path)):
        files = resolve_inputs(source)
    elif isinstance(source, (list, tuple)) and source:
        first = source[0]
        if isinstance(first, Path) or (isinstance(first, str) and _looks_like_path(first)):
            files = resolve_inputs(source)
    return val_split_for(fraction, method, files, text_field)


def _looks_like_path(text: str) -> bool:
    """A list of strings is a list of paths when its first item names an existing file or folder."""
    return len(text) < 4096 and "\n" not in text and os.path.exists(text)


class _TrainingStream:
    """The text the trainer sees: held-out text (whole documents or tails, by ``split``) diverted to
    the report, stopping at ``max_bytes``.

    Iterated once by ``train_from_iterator``; afterwards it holds the counts and the report texts
    (held-out documents, or a sample of training documents when none were held out).
    """

    def __init__(self, documents: Iterator[str], max_bytes: int | None, split: ValSplit):
        self._documents = documents
        self.max_bytes = max_bytes
        self.split = split
        self.documents = 0
        self.bytes = 0
        self.held_out: list[str] = []
        self.sample: list[str] = []

    def __iter__(self) -> Iterator[str]:
        held_chars = sample_chars = 0
        for document in self._documents:
            text, held = self.split.parts(document)
            if held and held_chars < _REPORT_CHARS:
                self.held_out.append(held)
                held_chars += len(held)
            if not text:
                continue
            size = len(text.encode("utf-8", "surrogatepass"))
            if self.max_bytes is not None and self.bytes + size > self.max_bytes and self.documents > 0:
                logger.info("reached max_bytes=%d; stopping the training stream", self.max_bytes)
                return
            self.documents += 1
            self.bytes += size
            if sample_chars < _REPORT_CHARS:
                self.sample.append(text[:_REPORT_CHARS])
                sample_chars += min(len(text), _REPORT_CHARS)
            yield from split_long(text)



def _save_atomically(tokenizer: PreTrainedTokenizerFast, report: dict, output_dir: Path) -> None:
    """Save into a staging folder, then move each file into place; ``tokenizer.json`` goes last."""
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=output_dir))
    try:
        try:
            tokenizer.save_pretrained(staging)
        except Exception as err:  # the Rust writer's full disk is a bare Exception: "... (os error 28)"
            if f"(os error {errno.ENOSPC})" not in str(err):
                raise
            raise OSError(errno.ENOSPC, "no space left on device (free space or choose another output folder)",
                          str(output_dir)) from err
        _portable_tokenizer_config(staging / "tokenizer_config.json")
        write_report(report, staging / "report.json")
        names = sorted(p.name for p in staging.iterdir())
        names.sort(key=lambda name: name == "tokenizer.json")
        for name in names:
            os.replace(staging / name, output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _portable_tokenizer_config(config_path: Path) -> None:
    """Use the names both transformers 4 and 5 read: class ``PreTrainedTokenizerFast`` (5 aliases it to
    its ``TokenizersBackend``) and a list of ``additional_special_tokens`` (5 converts it to
    ``extra_special_tokens``, which 4 expects to be a dict)."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    extra = config.pop("extra_special_tokens", [])
    if extra:
        config["additional_special_tokens"] = extra
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def special_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """The ids a model config needs so that model and tokenizer agree: bos/eos/pad ids and vocab size."""
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "vocab_size": len(tokenizer),
    }
