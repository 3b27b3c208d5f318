"""The ``data`` section of a recipe: what to read, which rules to apply, how to deduplicate.

Every filter is named in :data:`FILTER_DEFAULTS` with its defaults; a recipe turns one off with
``false`` or tunes it with a mapping of parameters. Everything is checked by
:meth:`CurateConfig.validate` before any work starts, so a typo costs a second, not a run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
from dataclasses import dataclass, field
from typing import Any

from lmfoundry.data.executors import EXECUTORS

# name -> default parameters ({} = the stock defaults of the underlying rule). The defaults follow
# FineWeb, except that C4's line-level punctuation rule is off (as in FineWeb) and the bad-words
# rule is off (it removes the King James Bible, among much else that is fine to train on).
FILTER_DEFAULTS: dict[str, dict[str, Any] | bool] = {
    "url": {},
    "language": {"languages": ["en"], "threshold": 0.65},
    "gopher_repetition": {},
    "gopher_quality": {},
    "c4_quality": {"filter_no_terminal_punct": False},
    "fineweb_quality": {},
    "c4_badwords": False,
    "code": {},
}
# Parameters a recipe may not set: the pipeline provides them.
_RESERVED_PARAMS = {"self", "exclusion_writer", "language", "kwargs", "args"}

DEDUP_DEFAULTS: dict[str, Any] = {
    "exact": True,
    "minhash": True,
    "n_grams": 5,
    "num_buckets": 14,
    "hashes_per_bucket": 8,
    "seed": 1,
}
OUTPUT_FORMATS = ("jsonl", "parquet")
WORD_TOKENIZERS = ("regex", "spacy")


@dataclass
class CurateConfig:
    """Curation settings (recipe section ``data``); every field has a working default.

    ``inputs`` entries are paths (kind from the extension, or from the folder's contents; a git
    checkout is read as a code repository), ``KIND:PATH`` to force a kind (``text``, ``jsonl``,
    ``parquet``, ``warc``, ``code``), or ``hf:DATASET_ID`` / ``hf://datasets/...`` for the Hub.
    """

    inputs: list[str] = field(default_factory=list, metadata={"alias": "--input"})
    """paths, KIND:PATH or hf:DATASET_ID (see the class docstring); empty under `lmfoundry run`: the built-in corpus"""
    text_field: str = "text"
    """records' field holding the text (jsonl, parquet, Hub datasets)"""
    id_field: str = "id"
    """records' field holding the document id (made from the source and position when missing)"""
    hf_split: str = "train"
    """split read from hf:DATASET inputs"""
    filters: dict[str, Any] = field(default_factory=dict)
    """per-filter settings: NAME: false turns a rule off, NAME: {param: value} tunes it (names in FILTER_DEFAULTS)"""
    dedup: dict[str, Any] = field(default_factory=dict)
    """deduplication settings: exact, minhash, n_grams, num_buckets, hashes_per_bucket, seed (DEDUP_DEFAULTS)"""
    pii: bool = True
    """replace e-mail addresses and public IP addresses with placeholders"""
    word_tokenizer: str = "regex"
    """word splitting for the quality rules: regex (fast, offline) or spacy"""
    # datatrove's own code for the steps lmfoundry re-implements for speed (Gopher rules, MinHash
    # shingling): same decisions, slower; the reference that benchmarks/curate_speed.py measures.
    stock_steps: bool = False
    """run datatrove's stock code for the re-implemented steps (the benchmark's reference)"""
    max_doc_bytes: int = 10_000_000
    """documents larger than this are skipped as too long"""
    code_max_file_bytes: int = 1_000_000
    """code files larger than this are skipped (generated or data files)"""
    workers: int = field(default=2, metadata={"alias": "--workers"})
    """processes running at once"""
    tasks: int = field(default=4, metadata={"alias": "--tasks"})
    """tasks the input is split into (each resumable on its own)"""
    executor: str = "local"
    """datatrove executor: local, slurm or ray"""
    executor_options: dict[str, Any] = field(default_factory=dict)
    """passed to the datatrove executor (Slurm partition and time, Ray resources, ...)"""
    output_format: str = "jsonl"
    """clean documents as jsonl (NNNNN.jsonl.gz) or parquet"""
    exclusion_dir: str | None = None
    """also write every dropped document here, by the rule that dropped it"""
    progress: bool = True
    """show progress bars"""

    def filter_params(self) -> dict[str, dict[str, Any]]:
        """Enabled filters in pipeline order, each with its full parameter mapping."""
        if not isinstance(self.filters or {}, dict):
            raise ValueError(
                f"recipe field data.filters: expected a mapping of filter name to settings, got {self.filters!r}"
            )
        self.filters = self.filters or {}
        unknown = sorted(set(self.filters) - set(FILTER_DEFAULTS))
        if unknown:
            raise ValueError(
                f"recipe field data.filters: unknown filter(s) {', '.join(unknown)}; "
                f"known filters: {', '.join(FILTER_DEFAULTS)}"
            )
        enabled: dict[str, dict[str, Any]] = {}
        for name, default in FILTER_DEFAULTS.items():
            value = self.filters.get(name, default)
            if value is False or value is None:
                continue
            if value is True:
                value = default if isinstance(default, dict) else {}
            if not isinstance(value, dict):
                raise ValueError(
                    f"recipe field data.filters.{name}: expected true, false or a mapping of parameters, "
                    f"got {value!r}"
                )
            params = dict(default) if isinstance(default, dict) else {}
            params.update(value)
            enabled[name] = params
        return enabled

    def dedup_params(self) -> dict[str, Any]:
        if not isinstance(self.dedup or {}, dict):
            raise ValueError(f"recipe field data.dedup: expected a mapping of settings, got {self.dedup!r}")
        self.dedup = self.dedup or {}
        unknown = sorted(set(self.dedup) - set(DEDUP_DEFAULTS))
        if unknown:
            raise ValueError(
                f"recipe field data.dedup: unknown setting(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(DEDUP_DEFAULTS)}"
            )
        params = {**DEDUP_DEFAULTS, **self.dedup}
        for key, default in DEDUP_DEFAULTS.items():
            kind = type(default)
            if not isinstance(params[key], kind):
                raise ValueError(
                    f"recipe field data.dedup.{key}: expected {kind.__name__}, got {params[key]!r}"
                )
            if kind is int and params[key] < 1:
                raise ValueError(f"recipe field data.dedup.{key}: must be >= 1, got {params[key]}")
        return params

    def validate(self) -> None:
        """Raise ``ValueError`` for any configuration mistake, before reading a byte of data."""
        from lmfoundry.data.curation.filters import FILTER_CLASSES

        if not self.inputs:
            raise ValueError("recipe field data.inputs: no inputs given (paths, KIND:PATH or hf:DATASET)")
        if isinstance(self.inputs, str):
            self.inputs = [self.inputs]
        self.executor_options = self.executor_options or {}
        for name, params in self.filter_params().items():
            allowed = _init_params(FILTER_CLASSES[name])
            bad = sorted(set(params) - allowed)
            if bad:
                raise ValueError(
                    f"recipe field data.filters.{name}: unknown parameter(s) {', '.join(bad)}; "
                    f"allowed: {', '.join(sorted(allowed))}"
                )
        self.dedup_params()
        for name, value, choices in (
            ("output_format", self.output_format, OUTPUT_FORMATS),
            ("executor", self.executor, EXECUTORS),
            ("word_tokenizer", self.word_tokenizer, WORD_TOKENIZERS),
        ):
            if value not in choices:
                raise ValueError(
                    f"recipe field data.{name}: expected one of {', '.join(choices)}, got {value!r}"
                )
        if self.word_tokenizer == "spacy" and importlib.util.find_spec("spacy") is None:
            raise ValueError(
                "recipe field data.word_tokenizer: 'spacy' needs the spacy package (pip install spacy)"
            )
        for name in ("pii", "stock_steps", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"recipe field data.{name}: expected true or false, got {getattr(self, name)!r}"
                )
        for name in ("workers", "tasks", "max_doc_bytes", "code_max_file_bytes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(
                    f"recipe field data.{name}: expected a positive integer, got {getattr(self, name)!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _init_params(cls: type) -> set[str]:
    """Keyword parameters a filter class accepts, following ``**kwargs`` up its ``__init__`` chain."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names - _RESERVED_PARAMS
