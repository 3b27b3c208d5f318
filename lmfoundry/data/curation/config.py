"""The ``data`` section of a recipe: what to read, which rules to apply, how to deduplicate.

Every document has a source kind (``web``, ``book``, ``code``, ``docs``) and each kind its own rule
set, :data:`KIND_FILTER_DEFAULTS`: web-page rules are made for web pages, not for books or code. A
recipe turns a rule off with ``false`` or tunes it with a mapping of parameters, for every kind
(``filters: {gopher_quality: {...}}``) or for one (``filters: {book: {gopher_quality: {...}}}``). Everything is checked by
:meth:`CurateConfig.validate` before any work starts, so a typo costs a second, not a run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
from dataclasses import dataclass, field
from typing import Any

from lmfoundry.data.executors import EXECUTORS

SOURCE_KINDS = ("web", "book", "code", "docs")
# Rules in pipeline order; each kind below turns on the ones made for it.
FILTER_NAMES = (
    "url",
    "language",
    "gopher_repetition",
    "gopher_quality",
    "c4_quality",
    "fineweb_quality",
    "c4_badwords",
    "code",
)
LANGUAGE_DEFAULTS = {"languages": ["en"], "threshold": 0.65}
# Repetition judged by paragraph only: line- and n-gram-level repetition is what verse refrains,
# a play's speaker lines and a long book's recurring phrases look like, and is fine in a book.
PARAGRAPH_REPETITION = {
    "dup_line_frac": None,
    "dup_line_char_frac": None,
    "top_n_grams": [],
    "dup_n_grams": [],
}
# kind -> rule -> default parameters ({} = the stock defaults of the rule; False = off, but a flat
# ``filters: {rule: true}`` turns it on for this kind). A rule a kind does not name never judges it.
KIND_FILTER_DEFAULTS: dict[str, dict[str, dict[str, Any] | bool]] = {
    # FineWeb's stack; C4's line-level punctuation rule off (as in FineWeb); bad words off (it
    # removes the King James Bible, among much else that is fine to train on).
    "web": {
        "url": {},
        "language": LANGUAGE_DEFAULTS,
        "gopher_repetition": {},
        "gopher_quality": {},
        "c4_quality": {"filter_no_terminal_punct": False},
        "fineweb_quality": {},
        "c4_badwords": False,
    },
    # Books: no length cap, no C4 line removal (verse, headings, speaker lines), no line-end
    # punctuation rule (hard-wrapped prose), repetition by paragraph; 60% of words (punctuation
    # counts as words) with a letter, not 80%: verse and dialogue are dense in punctuation.
    "book": {
        "language": LANGUAGE_DEFAULTS,
        "gopher_repetition": PARAGRAPH_REPETITION,
        "gopher_quality": {"max_doc_words": None, "max_non_alpha_words_ratio": 0.6},
    },
    "code": {"code": {}},
    # Prose files in repositories (README, docs/): Markdown headings, bullets and code blocks are
    # normal there, so only length, repetition by paragraph and stop words judge them.
    "docs": {
        "gopher_repetition": PARAGRAPH_REPETITION,
        "gopher_quality": {
            "min_doc_words": 20,
            "max_doc_words": None,
            "max_symbol_word_ratio": None,
            "max_bullet_lines_ratio": None,
            "max_ellipsis_lines_ratio": None,
            "max_non_alpha_words_ratio": None,
        },
    },
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
    # A target Jaccard similarity (0-1) instead of num_buckets x hashes_per_bucket: the bands are
    # chosen for it (see lmfoundry.data.curation.dedup.bands_for_similarity) and the detection
    # curve is logged. None keeps num_buckets and hashes_per_bucket.
    "similarity": None,
    # Keep a MinHash candidate pair only when the true Jaccard similarity of its shingle sets
    # reaches `similarity` (or 0.75 without one): no false positives, at the cost of re-reading
    # the candidate documents once.
    "verify": False,
}
OUTPUT_FORMATS = ("jsonl", "parquet")
WORD_TOKENIZERS = ("spacy_cached", "regex", "spacy")


@dataclass
class CurateConfig:
    """Curation settings (recipe section ``data``); every field has a working default.

    ``inputs`` entries are paths (format from the extension, or from the folder's contents; a git
    checkout is read as a code repository), ``FORMAT:PATH`` to force a format (``text``,
    ``jsonl``, ``parquet``, ``warc``, ``code``), ``KIND:PATH`` to force the source kind of every
    document read from it (``web``, ``book``, ``docs``; ``code:`` is a repository), or
    ``hf:DATASET_ID`` / ``hf://datasets/...`` for the Hub. Kinds by default: text files are
    ``book``, Markdown/reST ``docs``, WARC and jsonl/parquet/Hub records ``web`` (a record's
    ``kind`` field wins), files of a code folder ``code`` or, for its prose files, ``docs``.
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
    """rule settings: {rule: false | true | {params}} for every kind that has the rule, and/or
    {kind: {rule: false | true | {params}}} for one kind (applied after the first form); rules in FILTER_NAMES"""
    dedup: dict[str, Any] = field(default_factory=dict)
    """dedup settings (DEDUP_DEFAULTS): exact, minhash, n_grams, num_buckets, hashes_per_bucket, seed, similarity
    (a target Jaccard that chooses the bands), verify (a true-Jaccard check of candidate pairs)"""
    pii: bool = True
    """replace e-mail addresses and public IP addresses with placeholders"""
    word_tokenizer: str = "spacy_cached"
    """word splitting for the word-based rules and MinHash: spacy_cached gives datatrove's spaCy words exactly,
    each distinct whitespace-separated chunk split once; spacy is datatrove's own spaCy tokenizer (slow); regex
    needs no spaCy but splits some words differently (curly apostrophes, abbreviations such as Mr. and St.)"""
    stock_steps: bool = False
    """run datatrove's own code for the steps lmfoundry re-implements for speed (Gopher rules, MinHash
    shingling): same decisions, slower; the reference that benchmarks/curate_speed.py measures"""
    max_doc_bytes: int = 10_000_000
    """a record or a file part over this many bytes is skipped (too_long); longer text files are split into
    parts first, never dropped for their length"""
    text_split_bytes: int = 32_768
    """a plain-text file longer than this is split into documents of about this many bytes, at chapter headings
    where it has them, else at blank lines (paragraphs), else at line ends"""
    strip_gutenberg: bool = True
    """remove Project Gutenberg's header ("*** START OF ...") and license footer from text files"""
    code_max_file_bytes: int = 1_000_000
    """code files larger than this are skipped (generated or data files)"""
    extract_timeout_s: float = 600.0
    """per-page limit of HTML extraction, far above any real page (seconds); a page over it is dropped as
    extract:timeout, so extraction does not depend on machine load below it"""
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
    overwrite: bool = field(default=False, metadata={"alias": "--overwrite"})
    """replace a complete output folder curated with other settings (built beside it, swapped in when whole)"""

    def filter_params(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per kind, the enabled rules in pipeline order, each with its full parameter mapping."""
        filters = self.filters or {}
        if not isinstance(filters, dict):
            raise ValueError(
                f"recipe field data.filters: expected a mapping of filter name (or kind) to settings, "
                f"got {filters!r}"
            )
        self.filters = filters
        unknown = sorted(set(filters) - set(FILTER_NAMES) - set(SOURCE_KINDS))
        if unknown:
            raise ValueError(
                f"recipe field data.filters: unknown filter(s) or kind(s) {', '.join(unknown)}; "
                f"known filters: {', '.join(FILTER_NAMES)}; kinds: {', '.join(SOURCE_KINDS)}"
            )
        # "code" is both a rule and a kind: a mapping of rule names is the kind's form, anything else the rule's
        def kind_form(key: str, value: Any) -> bool:
            if key not in FILTER_NAMES:
                return True
            return isinstance(value, dict) and bool(value) and set(value) <= set(FILTER_NAMES)

        flat = {k: v for k, v in filters.items() if k in FILTER_NAMES and not kind_form(k, v)}
        by_kind = {k: v for k, v in filters.items() if k in SOURCE_KINDS and kind_form(k, v)}
        result: dict[str, dict[str, dict[str, Any]]] = {}
        for kind in SOURCE_KINDS:
            per_kind = by_kind.get(kind) or {}
            if not isinstance(per_kind, dict):
                raise ValueError(
                    f"recipe field data.filters.{kind}: expected a mapping of filter name to settings, "
                    f"got {per_kind!r}"
                )
            bad = sorted(set(per_kind) - set(FILTER_NAMES))
            if bad:
                raise ValueError(
                    f"recipe field data.filters.{kind}: unknown filter(s) {', '.join(bad)}; "
                    f"known filters: {', '.join(FILTER_NAMES)}"
                )
            defaults = KIND_FILTER_DEFAULTS[kind]
            enabled: dict[str, dict[str, Any]] = {}
            for name in FILTER_NAMES:
                params: dict[str, Any] | None = None
                default = defaults.get(name)
                if default is not None:  # the kind names the rule: defaults, then the flat setting
                    params = dict(default) if isinstance(default, dict) else None
                    if name in flat:
                        params = _apply(params, flat[name], f"data.filters.{name}")
                if name in per_kind:
                    base = (
                        params if params is not None else (dict(default) if isinstance(default, dict) else {})
                    )
                    params = _apply(base, per_kind[name], f"data.filters.{kind}.{name}")
                if params is not None:
                    enabled[name] = params
            result[kind] = enabled
        return result

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
            if key == "similarity":
                value = params[key]
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1
                ):
                    raise ValueError(
                        f"recipe field data.dedup.similarity: expected a number between 0 and 1, got {value!r}"
                    )
                continue
            kind = type(default)
            if not isinstance(params[key], kind):
                raise ValueError(
                    f"recipe field data.dedup.{key}: expected {kind.__name__}, got {params[key]!r}"
                )
            if kind is int and params[key] < 1:
                raise ValueError(f"recipe field data.dedup.{key}: must be >= 1, got {params[key]}")
        if params["similarity"] is not None:
            from lmfoundry.data.curation.dedup import bands_for_similarity

            params["num_buckets"], params["hashes_per_bucket"] = bands_for_similarity(params["similarity"])
        return params

    def validate(self) -> None:
        """Raise ``ValueError`` for any configuration mistake, before reading a byte of data."""
        from lmfoundry.data.curation.filters import FILTER_CLASSES

        if not self.inputs:
            raise ValueError("recipe field data.inputs: no inputs given (paths, KIND:PATH or hf:DATASET)")
        if isinstance(self.inputs, str):
            self.inputs = [self.inputs]
        self.executor_options = self.executor_options or {}
        for kind, rules in self.filter_params().items():
            for name, params in rules.items():
                allowed = _init_params(FILTER_CLASSES[name])
                bad = sorted(set(params) - allowed)
                if bad:
                    raise ValueError(
                        f"recipe field data.filters.{name} (kind {kind}): unknown parameter(s) {', '.join(bad)}; "
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
        if self.word_tokenizer != "regex" and importlib.util.find_spec("spacy") is None:
            raise ValueError(
                f"recipe field data.word_tokenizer: {self.word_tokenizer!r} needs the spacy package "
                "(pip install spacy), or use 'regex'"
            )
        for name in ("pii", "stock_steps", "progress", "strip_gutenberg"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"recipe field data.{name}: expected true or false, got {getattr(self, name)!r}"
                )
        if (
            isinstance(self.extract_timeout_s, bool)
            or not isinstance(self.extract_timeout_s, (int, float))
            or (self.extract_timeout_s <= 0)
        ):
            raise ValueError(
                f"recipe field data.extract_timeout_s: expected a positive number of seconds, "
                f"got {self.extract_timeout_s!r}"
            )
        for name in ("workers", "tasks", "max_doc_bytes", "code_max_file_bytes", "text_split_bytes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(
                    f"recipe field data.{name}: expected a positive integer, got {getattr(self, name)!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _apply(params: dict[str, Any] | None, value: Any, where: str) -> dict[str, Any] | None:
    """One recipe setting on top of ``params``: false/None turns off, true keeps, a mapping tunes."""
    if value is False or value is None:
        return None
    if value is True:
        return params if params is not None else {}
    if not isinstance(value, dict):
        raise ValueError(
            f"recipe field {where}: expected true, false or a mapping of parameters, got {value!r}"
        )
    return {**(params or {}), **value}


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
