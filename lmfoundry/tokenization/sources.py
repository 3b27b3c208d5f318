"""Reading documents from the files people actually have: txt/md, jsonl(.gz), parquet, or folders of them.

Both tokenizer training and the shard writer stream documents through :func:`iter_documents`, one file
at a time and (for jsonl/parquet) one record or row group at a time, so memory stays bounded by the
largest single document rather than by the corpus. The validation split rule (:func:`is_validation`)
lives here too because the tokenizer's held-out report and the shards' ``val`` split must agree: by
default the tokenizer never trains on the documents that bits-per-byte is later measured on.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import xxhash

logger = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".jsonl", ".jsonl.gz", ".parquet")
# Longest string handed to `tokenizers` at once (see split_long): bounds its memory on one-line documents.
PIECE_CHARS = 1_000_000


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def resolve_inputs(inputs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively, sorted, hidden files skipped) into the supported files.

    A file named explicitly must have a supported suffix; files of other kinds inside a folder (for
    example curation's ``stats.json``) are skipped.
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise ValueError("no input paths given")
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and _kind(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise FileNotFoundError(f"{path}: folder holds no {'/'.join(SUFFIXES)} files")
            files.extend(found)
        elif path.is_file():
            if _kind(path) is None:
                raise ValueError(f"{path}: unsupported file type; expected one of {', '.join(SUFFIXES)}")
            files.append(path)
        else:
            raise FileNotFoundError(f"input not found: {path}")
    return files


def iter_documents(files: Iterable[Path], text_field: str = "text") -> Iterator[str]:
    """Yield each document's text: a whole txt/md file, one jsonl record, or one parquet row."""
    for path in files:
        kind = _kind(Path(path))
        if kind in (".txt", ".md"):
            with open(path, encoding="utf-8", newline="") as f:  # newline="": keep CRLF as written
                try:
                    text = f.read()
                except UnicodeDecodeError as err:
                    raise ValueError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
            yield text
        elif kind in (".jsonl", ".jsonl.gz"):
            yield from _iter_jsonl(Path(path), text_field)
        elif kind == ".parquet":
            yield from _iter_parquet(Path(path), text_field)
        else:
            raise ValueError(f"{path}: unsupported file type; expected one of {', '.join(SUFFIXES)}")


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a jsonl or jsonl.gz file; a truncated or corrupt gzip names the file and line."""
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115
    number = 0
    with raw:
        try:
            for number, line in enumerate(raw, 1):
                yield number, line
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise ValueError(f"{path}:{number + 1}: truncated or corrupt gzip data ({err or type(err).__name__}) "
                             "(expected a whole gzip file)") from None


def _iter_jsonl(path: Path, text_field: str) -> Iterator[str]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid UTF-8 ({err.reason})") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON: {err.msg}") from None
        text = text_of(record, text_field, f"{path}:{number}")
        if b"\\ud" in line or b"\\uD" in line:  # a \uD800-\uDFFF escape may leave a lone surrogate
            text = text.encode("utf-8", "replace").decode("utf-8")
        yield text


def _iter_parquet(path: Path, text_field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if text_field not in parquet.schema_arrow.names:
        raise ValueError(
            f"{path}: no column {text_field!r} (columns: {', '.join(parquet.schema_arrow.names)}); "
            "choose one with --text-field"
        )
    row = 0
    for batch in parquet.iter_batches(columns=[text_field], batch_size=1024):
        for text in batch.column(0).to_pylist():
            row += 1
            if not isinstance(text, str):
                raise ValueError(
                    f"{path}: row {row}: field {text_field!r} is {type(text).__name__}, expected a string"
                )
            yield text


def text_of(record: object, text_field: str, where: str) -> str:
    """The string in ``record[text_field]``; anything else is an error that says ``where``."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if text_field not in record:
        raise ValueError(
            f"{where}: no field {text_field!r} (fields: {', '.join(record)}); choose one with --text-field"
        )
    text = record[text_field]
    if not isinstance(text, str):
        raise ValueError(f"{where}: field {text_field!r} is {type(text).__name__}, expected a string")
    return text


def is_validation(text: str, fraction: float) -> bool:
    """Whether a document belongs to the validation split: a hash of its text, not its position.

    Hashing the content keeps the split stable when the corpus grows or is reordered, and puts exact
    duplicates on the same side so validation never contains a copy of a training document.
    """
    if fraction <= 0.0:
        return False
    return xxhash.xxh64_intdigest(text.encode("utf-8", "surrogatepass")) < fraction * 2.0**64


def split_long(text: str, limit: int = PIECE_CHARS) -> Iterator[str]:
    """``text`` in pieces of at most about ``limit`` characters, cut after a whitespace.

    ``tokenizers`` pre-tokenizes (trains on, or measures) each string it is given at once, at
    ~200 bytes per character: a 50 MB single-line document would cost gigabytes. Merges are learned from word counts, so cutting a long document at
    whitespace changes at most the one word at each cut, and memory stays bounded by ``limit``.
    """
    start = 0
    while len(text) - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        cut = start + limit if cut == -1 else cut + 1
        yield text[start:cut]
        start = cut
    yield text[start:]
