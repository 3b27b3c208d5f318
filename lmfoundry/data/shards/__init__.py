"""Token shards: documents -> train/val token files + ``manifest.json``, all in this package.

- :mod:`~lmfoundry.data.shards.config`: :class:`TokenizeConfig`, the ``tokenize`` recipe section;
- :mod:`~lmfoundry.data.shards.tokenize`: :func:`tokenize_shards`, the one entry point (common
  preamble, then one of two schedulers);
- :mod:`~lmfoundry.data.shards.local`: the local scheduler (one job, parallel inside a file,
  resumable by parts; its docstring says why it exists next to datatrove's);
- :mod:`~lmfoundry.data.shards.steps`: the datatrove scheduler (:class:`TokenizeShards`, a pipeline
  step usable in any datatrove pipeline, and :func:`merge_tasks`);
- :mod:`~lmfoundry.data.shards.encoding`: the encoding core both share (batches, encoder choice,
  train/val cut, per-split writers);
- :mod:`~lmfoundry.data.shards.format`: the on-disk format (datatrove ``.ds`` layout + manifest);
- :mod:`~lmfoundry.data.shards.folder`: a shards folder's life (skip, refuse, clear, publish).

The format names are imported here (readers such as the dataset and the eval need only them);
:class:`TokenizeConfig` and :func:`tokenize_shards` on first use, so reading shards loads neither
the encoders nor the tokenizer package.
"""

from __future__ import annotations

from typing import Any

from lmfoundry.data.shards.format import (
    FORMAT,
    MANIFEST,
    SPLITS,
    TOKEN_DTYPES,
    ShardWriter,
    check_shard_files,
    dtype_for_vocab,
    make_manifest,
    read_manifest,
    sha256_file,
    split_summary,
)

__all__ = [
    "FORMAT",
    "MANIFEST",
    "SPLITS",
    "TOKEN_DTYPES",
    "ShardWriter",
    "TokenizeConfig",
    "check_shard_files",
    "dtype_for_vocab",
    "make_manifest",
    "read_manifest",
    "sha256_file",
    "split_summary",
    "tokenize_shards",
]


def __getattr__(name: str) -> Any:
    if name == "tokenize_shards":
        from lmfoundry.data.shards.tokenize import tokenize_shards

        return tokenize_shards
    if name == "TokenizeConfig":
        from lmfoundry.data.shards.config import TokenizeConfig

        return TokenizeConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
