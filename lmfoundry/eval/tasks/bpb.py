"""Bits per byte and perplexity, on token shards or on any text, as lm-eval's rolling log-likelihood.

Each document is scored alone, exactly as lm-eval-harness's ``loglikelihood_rolling`` (its
``get_rolling_token_windows`` and ``make_disjoint_window`` with ``context_len=1``): the document's
tokens (the tokenizer's default special tokens, as lm-eval's ``tok_encode``) are cut into windows of
the model's context; the first window is conditioned on the prefix token (BOS, else EOS), each later
one predicts the next ``max_length`` tokens given the one token before them, and the last window is
filled to the full context with earlier tokens. Every token is scored exactly once, and no window
crosses a document boundary.

The metrics are those of lm-eval's ``wikitext``/``pile`` tasks: ``bits_per_byte``,
``byte_perplexity`` and ``word_perplexity``, with bytes (UTF-8) and words
(``len(re.split(r"\\s+", text))``) counted on the raw text, plus ``loss`` (nats per token) and
``perplexity`` (per token).

Sources:

* a shards folder (``manifest.json``, from ``lmfoundry data tokenize``): the ``val`` split,
  document by document (the index files give the boundaries; the end-of-document token, which stands
  for no text, is not scored), bytes from the manifest's raw-text counts; the shards' tokenizer
  must be the model's. Shards and the same documents as text give the same numbers;
* ``.txt``/``.md`` files (one document each), ``.jsonl``/``.jsonl.gz``/``.parquet`` (a ``text``
  field per record), a folder of those, or a ``datasets`` Hub id (``name`` or ``name:split``, default ``test``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lmfoundry.eval.config import EvalConfig
from lmfoundry.eval.data import load_hub
from lmfoundry.eval.lm import LanguageModel
from lmfoundry.eval.metrics import load_metric
from lmfoundry.eval.tasks import TaskResult
from lmfoundry.tokenization.sources import iter_documents, resolve_inputs

logger = logging.getLogger(__name__)


def rolling_windows(
    tokens: Sequence[int], prefix_token: int, max_seq_len: int
) -> Iterator[tuple[list[int], list[int]]]:
    """(context, continuation) pairs that score ``tokens`` once each: lm-eval's
    ``map(make_disjoint_window, get_rolling_token_windows(tokens, prefix_token, max_seq_len, 1))``."""
    tokens = list(tokens)
    if not tokens:
        return
    first = min(max_seq_len, len(tokens))
    yield [prefix_token], tokens[:first]  # the first window: [prefix] + tokens[:first - 1] as input
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, max_seq_len)
        end = predicted + n
        context = tokens[max(end - max_seq_len - 1, 0) : end - 1]
        yield context[: len(context) - (n - 1)], tokens[end - n : end]
        predicted = end


def count_words(text: str) -> int:
    """lm-eval's ``count_words``."""
    return len(re.split(r"\s+", text))


@dataclass
class Document:
    """One scored document: its tokens and the size of the raw text they came from."""

    tokens: Sequence[int]
    bytes: int | None  # None: unknown here (a shard), filled from the manifest
    words: int


def read_texts(source: str) -> list[str]:
    """Documents of a text source (see the module docstring).

    Local files go through the same reader as tokenizer training and tokenization
    (:mod:`lmfoundry.tokenization.sources`), so a corpus is split into documents one way everywhere.
    """
    path = Path(source)
    if not path.exists():
        if source.startswith((".", "/")) or source.count("/") > 1:
            raise FileNotFoundError(f"bpb data not found: {source}")
        name, _, split = source.partition(":")
        return [r["text"] for r in load_hub(name, None, split or "test", "a local text file or folder")]
    return list(iter_documents(resolve_inputs(path)))


def shard_tokens(shards_dir: Path, split: str) -> tuple[list[np.ndarray], float]:
    """Each shard's tokens (memory-mapped, sizes checked against the manifest) and the split's UTF-8
    bytes per token."""
    from lmfoundry.data.shards import TOKEN_DTYPES, check_shard_files, read_manifest, split_summary

    manifest = read_manifest(shards_dir)
    records = [r for r in manifest["shards"] if r["split"] == split]
    if not records or not sum(r["tokens"] for r in records):
        raise ValueError(f"{shards_dir / 'manifest.json'}: the {split!r} split has no tokens")
    dtype = np.dtype(TOKEN_DTYPES[manifest["dtype"]]).newbyteorder("<")
    check_shard_files(shards_dir, records, dtype.itemsize, verify=False)
    arrays = [np.memmap(shards_dir / r["path"], dtype=dtype, mode="r") for r in records]
    return arrays, split_summary(records)["bytes_per_token"]


def shard_documents(
    lm: LanguageModel, shards_dir: Path, split: str, limit: int | None
) -> tuple[Iterator[Document], int | None]:
    """The split's documents without their end-of-document token, and the split's raw-text bytes
    from the manifest (None with ``limit``: then each document's bytes come from its decoded tokens)."""
    from lmfoundry.data.shards import read_manifest

    manifest = read_manifest(shards_dir)
    records = [r for r in manifest["shards"] if r["split"] == split]
    arrays, _ = shard_tokens(shards_dir, split)
    eos = manifest.get("eos_token_id", lm.tokenizer.eos_token_id)

    def documents() -> Iterator[Document]:
        for record, tokens in zip(records, arrays):
            path = shards_dir / record["path"]
            ends = np.fromfile(path.with_name(path.name + ".index"), dtype="<u8")
            start = 0
            for end in ends.tolist():
                doc = tokens[start:end].tolist()
                start = end
                if doc and doc[-1] == eos:
                    doc = doc[:-1]
                text = lm.tokenizer.decode(doc)
                yield Document(doc, None if limit is None else len(text.encode("utf-8")), count_words(text))

    total = sum(r["bytes"] for r in records) if limit is None else None
    return islice(documents(), limit), total


def evaluate_bpb(
    lm: LanguageModel,
    source: str | Path,
    context_length: int | None = None,
    limit: int | None = None,
    split: str = "val",
    per_document: bool = False,
) -> TaskResult:
    """Bits per byte, byte/word perplexity, loss per token and perplexity of ``lm`` on ``source``.

    ``context_length`` defaults to the model's window (lm-eval's ``max_length``; a shorter one
    changes the number). ``limit`` caps the documents. With ``per_document``, ``details`` holds
    each document's log-likelihood (lm-eval's per-request ``loglikelihood_rolling`` value). Usable
    from a training loop with ``LanguageModel(model, tokenizer)``.
    """
    max_seq_len = min(context_length or lm.max_length, lm.max_length)
    if max_seq_len < 1:
        raise ValueError(f"bpb context_length must be at least 1, got {context_length}")
    path = Path(source)
    if (path / "manifest.json").exists():
        _check_fingerprint(lm, path)
        documents, split_bytes = shard_documents(lm, path, split, limit)
        bytes_from = "manifest (raw text)" if split_bytes is not None else "decoded tokens (with limit)"
    else:
        documents = (
            Document(lm.encode(t), len(t.encode("utf-8")), count_words(t))
            for t in read_texts(str(source))[:limit]
        )
        split_bytes, bytes_from = None, "raw text"
    tokens, n_bytes, words = 0, 0, 0
    doc_loglikelihoods: list[float] = []

    def windows() -> Iterator[tuple[int, list[int], int]]:
        nonlocal n_bytes, words
        for doc in documents:
            doc_loglikelihoods.append(0.0)
            n_bytes += doc.bytes or 0
            words += doc.words
            for context, continuation in rolling_windows(doc.tokens, lm.prefix_token_id, max_seq_len):
                sequence = (context + continuation)[-(max_seq_len + 1) :]
                yield len(doc_loglikelihoods) - 1, sequence, len(sequence) - len(continuation)

    stream = windows()
    with tqdm(desc="bpb", unit="window", leave=False) as progress:
        while part := list(islice(stream, lm.batch_size * 8)):
            scored = lm.token_logprobs([s for _, s, _ in part], [first for _, _, first in part])
            for (doc, _, _), scores in zip(part, scored):
                doc_loglikelihoods[doc] += float(scores.double().sum())
                tokens += scores.numel()
            progress.update(len(part))
    nats = -sum(doc_loglikelihoods)
    if not tokens:
        raise ValueError(f"bpb: {source} holds no text to score")
    if split_bytes is not None:
        n_bytes = split_bytes
    metrics = load_metric("bits_per_byte").compute(
        loss_nats=[nats], num_tokens=[tokens], num_bytes=[max(n_bytes, 1)], num_words=[max(words, 1)]
    )
    details = {
        "source": str(source),
        "documents": len(doc_loglikelihoods),
        "tokens": tokens,
        "bytes": n_bytes,
        "words": words,
    }
    if per_document:
        details["document_loglikelihoods"] = doc_loglikelihoods
    settings = {
        "mirrors": "lm-eval loglikelihood_rolling (context_len=1) with wikitext/pile metrics",
        "max_seq_len": max_seq_len,
        "prefix_token_id": lm.prefix_token_id,
        "bytes_from": bytes_from,
        "end_of_document_scored": False,
    }
    keys = ("bits_per_byte", "byte_perplexity", "word_perplexity", "perplexity", "loss")
    return TaskResult(metrics={k: metrics[k] for k in keys}, details=details, settings=settings)


def _check_fingerprint(lm: LanguageModel, shards_dir: Path) -> None:
    from lmfoundry.data.shards import read_manifest
    from lmfoundry.tokenization import tokenizer_fingerprint

    expected = read_manifest(shards_dir)["tokenizer_fingerprint"]
    if tokenizer_fingerprint(lm.tokenizer) != expected:
        raise ValueError(
            f"{shards_dir / 'manifest.json'}: the shards were made with another tokenizer than the model's "
            f"(fingerprint {expected[:12]}…); score text files instead to compare across tokenizers"
        )


class BitsPerByteTask:
    name = "bpb"

    def __init__(self, options: EvalConfig) -> None:
        if not options.bpb_data:
            raise ValueError(
                "task bpb needs data: pass --bpb-data (a shards folder, text files or a dataset id)"
            )
        self.source = options.bpb_data
        self.limit = options.limit
        if Path(self.source).exists() and not (Path(self.source) / "manifest.json").exists():
            resolve_inputs(Path(self.source))  # fail now on an empty folder, before loading the model

    def run(self, lm: LanguageModel) -> TaskResult:
        result = evaluate_bpb(lm, self.source, limit=self.limit)
        logger.info(
            "bpb %.4f (perplexity %.2f) on %s",
            result.metrics["bits_per_byte"],
            result.metrics["perplexity"],
            self.source,
        )
        return result
