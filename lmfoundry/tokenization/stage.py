"""The tokenizer stage: train the recipe's tokenizer on a folder of documents, report its numbers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmfoundry.locks import output_lock
from lmfoundry.tokenization.config import TokenizerConfig
from lmfoundry.tokenization.train import special_token_ids, train_tokenizer


def build_tokenizer(
    config: TokenizerConfig,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    held_out_fraction: float,
    held_out_method: str = "auto",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train and save the tokenizer; return its vocabulary size and held-out bytes per token.

    ``held_out_fraction`` and ``held_out_method`` are the shards' val split settings: the same text
    stays out of both, so bits per byte is measured on text neither the tokenizer nor the model saw.
    ``output`` is locked while it trains (:func:`lmfoundry.locks.output_lock`).
    """
    with output_lock(output, "build_tokenizer"):
        tokenizer = train_tokenizer(
            [Path(item) for item in inputs],  # paths, never text: a mistyped path is an error, not a document
            config.vocab_size,
            output,
            text_field=config.text_field,
            extra_special_tokens=config.extra_special_tokens,
            min_frequency=config.min_frequency,
            max_bytes=config.max_bytes,
            held_out_fraction=held_out_fraction,
            held_out_method=held_out_method,
            overwrite=overwrite,
        )
        report_path = Path(output) / "report.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return {"vocab_size": special_token_ids(tokenizer)["vocab_size"], "bytes_per_token": report.get("bytes_per_token"),
            "report": report}
