"""``ShardJob``: what :func:`~lmfoundry.data.shards.tokenize_shards`'s preamble settled, handed to a scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmfoundry.data.shards.config import TokenizeConfig
from lmfoundry.tokenization.holdout import ValSplit


@dataclass(frozen=True)
class ShardJob:
    """What the preamble settled, handed to a scheduler."""

    files: list[Path]
    tokenizer_dir: Path
    output_dir: Path
    fingerprint: str
    sources: list[dict[str, Any]]
    val_split: ValSplit
    config: TokenizeConfig

    @property
    def settings(self) -> dict[str, Any]:
        """What a rerun must match to count as the same job (and the manifest records)."""
        return {
            "val_fraction": self.config.val_fraction,
            "val_method": self.val_split.method,
            "text_field": self.config.text_field,
            "shard_tokens": self.config.shard_tokens,
        }

    @property
    def inputs(self) -> str:
        """The input files, as errors name them."""
        return ", ".join(map(str, self.files))
