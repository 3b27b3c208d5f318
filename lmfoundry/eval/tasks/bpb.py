"""Bits per byte and perplexity, on token shards or on any text.

Loss is summed over tokens and divided by the UTF-8 bytes those tokens stand for, so the number does
not depend on the tokenizer and models with different vocabularies compare directly. Long texts are
scored with a sliding window: each window holds up to ``context_length`` tokens and scores only the
tokens the previous window did not (``stride`` new tokens per window, the rest is context).

Sources:

* a shards folder (``manifest.json``, from ``lmfoundry data tokenize``): the ``val`` split's token
  stream, bytes from the manifest's bytes-per-token; the shards' tokenizer must be the model's;
* ``.txt``/``.md`` files (one document each), ``.jsonl``/``.jsonl.gz``/``.parquet`` (a ``text``
  field per record), a folder of those, or a ``datasets`` Hub id (``name`` or ``name:split``, default ``test``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from itertools import chain, islice
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
DEFAULT_CONTEXT = 4096  # window cap for long-context models: memory, not accuracy, sets it


def sliding_windows(
    tokens: Sequence[int], context_length: int, stride: int
) -> Iterator[tuple[Sequence[int], int]]:
    """(window, first scored index) pairs that score ``tokens[1:]`` exactly once each."""
    if len(tokens) < 2:
        return
    scored_until = 1  # tokens[0] only conditions
    for begin in range(0, max(len(tokens) - 1, 1), stride):
        end = min(begin + context_length + 1, len(tokens))
        yield tokens[begin:end], scored_until - begin
        scored_until = end
        if end == len(tokens):
            return


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
    """Each shard's tokens (memory-mapped) and the split's UTF-8 bytes per token."""
    from lmfoundry.data.shards import TOKEN_DTYPES, check_shard_files, read_manifest, split_summary

    manifest = read_manifest(shards_dir)
    records = [r for r in manifest["shards"] if r["split"] == split]
    if not records or not sum(r["tokens"] for r in records):
        raise ValueError(f"{shards_dir / 'manifest.json'}: the {split!r} split has no tokens")
    dtype = np.dtype(TOKEN_DTYPES[manifest["dtype"]]).newbyteorder("<")
    check_shard_files(shards_dir, records, dtype.itemsize, verify=False)
    arrays = [np.memmap(shards_dir / r["path"], dtype=dtype, mode="r") for r in records]
    return arrays, split_summary(records)["bytes_per_token"]


def evaluate_bpb(
    lm: LanguageModel,
    source: str | Path,
    context_length: int | None = None,
    stride: int | None = None,
    limit: int | None = None,
    split: str = "val",
) -> TaskResult:
    """Bits per byte, loss per token and perplexity of ``lm`` on ``source`` (shards or text).

    ``context_length`` defaults to the model's window, at most 4096 tokens; ``stride`` to half of it.
    ``limit`` caps the documents (text) or windows (shards). Usable from a training loop with
    ``LanguageModel(model, tokenizer)``.
    """
    context_length = min(context_length or DEFAULT_CONTEXT, lm.max_length)
    stride = stride or max(context_length // 2, 1)
    if not 0 < stride <= context_length:
        raise ValueError(f"bpb stride must be in [1, {context_length}], got {stride}")
    path = Path(source)
    doc_bytes: list[int] = []  # text sources: filled as documents are tokenized
    if (path / "manifest.json").exists():
        _check_fingerprint(lm, path)
        arrays, bytes_per_token = shard_tokens(path, split)
        windows = islice(
            chain.from_iterable(sliding_windows(a, context_length, stride) for a in arrays), limit
        )
    else:
        windows = _text_windows(lm, read_texts(str(source))[:limit], context_length, stride, doc_bytes)
    nats, tokens = 0.0, 0
    with tqdm(desc="bpb", unit="window", leave=False) as progress:
        while part := list(islice(windows, lm.batch_size * 8)):
            sequences = [np.asarray(w, dtype=np.int64).tolist() for w, _ in part]
            for scores in lm.token_logprobs(sequences, [first for _, first in part]):
                nats -= float(scores.double().sum())
                tokens += scores.numel()
            progress.update(len(part))
    if not tokens:
        raise ValueError(f"bpb: {source} holds no text to score")
    n_bytes = sum(doc_bytes) if doc_bytes else round(tokens * bytes_per_token)
    metrics = load_metric("bits_per_byte").compute(
        loss_nats=[nats], num_tokens=[tokens], num_bytes=[max(n_bytes, 1)]
    )
    details = {
        "source": str(source),
        "tokens": tokens,
        "bytes": n_bytes,
        "context_length": context_length,
        "stride": stride,
    }
    return TaskResult(
        metrics={k: metrics[k] for k in ("bits_per_byte", "perplexity", "loss")}, details=details
    )


def _text_windows(
    lm: LanguageModel, texts: list[str], context_length: int, stride: int, doc_bytes: list[int]
) -> Iterator[tuple[list[int], int]]:
    """Windows over each document, conditioned on the prefix token so its first token is scored."""
    for text in texts:
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        if ids:
            doc_bytes.append(len(lm.tokenizer.decode(ids).encode("utf-8")))
            yield from sliding_windows([lm.prefix_token_id, *ids], context_length, stride)


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
