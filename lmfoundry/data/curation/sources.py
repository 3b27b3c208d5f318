"""Reading raw sources into documents: text and Markdown, jsonl(.gz), parquet, WARC/WET, code, the Hub.

Inputs are resolved in the driver (:func:`discover_inputs`), so a missing path or an unreadable
parquet schema is an error before any work starts; files left out by path or extension are counted
there and reported in ``stats.json``. :class:`SourceReader` is the first datatrove step of the
pipeline: it spreads the files over the tasks by size, tags each document with its source kind
(``web``, ``book``, ``code``, ``docs``) and reads defensively. Damaged input never stops a task:
each malformed JSON line, undecodable file, corrupt gzip member, truncated WARC record, empty file
or over-long document is skipped, counted under its reason, and logged with the file and line it
came from; reading resumes at the next intact gzip member or WARC record.

Plain text (books): decoded as UTF-8 (a BOM is dropped), else with the encoding charset-normalizer
detects (Latin-1 books decode). CRLF and CR line ends become LF, as Python's text mode does: a
model should not spend tokens on ``\r`` or learn two spellings of one line break. Hard wraps are
kept: un-wrapping is a guess that breaks verse, tables and lists, and the line structure of a book
is part of its text. Project Gutenberg's header and license are removed (``strip_gutenberg``), and
a long file is split into documents of about ``text_split_bytes`` at chapter headings, else at
blank lines, else at line ends: a book is never dropped for its length, and a single input file
still gives enough documents for a validation split.
"""

from __future__ import annotations

import io
import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from tqdm import tqdm

from lmfoundry.data.curation.code import (
    code_language,
    generated_by_content,
    is_git_checkout,
    is_prose_file,
    repository_files,
    repository_license,
    skipped_by_path,
)
from lmfoundry.data.curation.filters import count

logger = logging.getLogger(__name__)

FORMATS = ("text", "jsonl", "parquet", "warc", "code")
SOURCE_KINDS = ("web", "book", "code", "docs")
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text", ".rst")
DOCS_SUFFIXES = (".md", ".markdown", ".rst")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json.gz")
WARC_SUFFIXES = (".warc", ".warc.gz", ".arc.gz", ".wet", ".wet.gz", ".arc")
PARQUET_SUFFIXES = (".parquet",)
MAX_WARNINGS_PER_FILE = 5
_READ_DECODE_ERRORS = (EOFError, OSError, zlib.error, ValueError)


@dataclass(frozen=True)
class InputFile:
    """One file to read: where it is, how to read it, which input it came from."""

    path: str
    format: str
    source: str
    relpath: str
    size: int
    kind: str | None = None  # source kind forced by the input spec (KIND:PATH), else the reader's
    license: str | None = None  # SPDX id of the repository the file belongs to, when known


@dataclass(frozen=True)
class HubInput:
    """A Hugging Face dataset read in streaming mode (an id, a local dataset folder or an hf:// path)."""

    source: str
    name: str
    kind: str | None = None


def format_of_file(path: Path) -> str | None:
    name = path.name.lower()
    for kind, suffixes in (
        ("jsonl", JSONL_SUFFIXES),
        ("warc", WARC_SUFFIXES),
        ("parquet", PARQUET_SUFFIXES),
        ("text", TEXT_SUFFIXES),
    ):
        if name.endswith(suffixes):
            return kind
    return "code" if code_language(path) else None


@dataclass
class Inputs:
    """The resolved inputs: files to read, Hub datasets, and the files left out, per source and reason."""

    files: list[InputFile]
    hubs: list[HubInput]
    skipped: dict[str, dict[str, int]]  # source -> reason -> files

    @property
    def all(self) -> list[InputFile | HubInput]:
        return [*self.files, *self.hubs]


def discover_inputs(specs: list[str], text_field: str, hf_split: str) -> Inputs:
    """Resolve input specs to files and Hub datasets; raise for anything that cannot be read."""
    files: list[InputFile] = []
    hubs: list[HubInput] = []
    skipped: dict[str, dict[str, int]] = {}
    for spec in specs:
        spec = str(spec)
        prefix, _, rest = spec.partition(":")
        kind = prefix if rest and prefix in ("web", "book", "docs") else None
        target = rest if kind else spec
        if target.startswith(("hf:", "hf://")):
            name = target if target.startswith("hf://") else target[len("hf:") :]
            _open_hub_dataset(name, hf_split)  # fail now, not inside a worker
            hubs.append(HubInput(source=spec, name=name, kind=kind))
            continue
        fmt, _, rest = target.partition(":")
        forced = fmt if rest and fmt in FORMATS else None
        path = Path(rest if forced else target).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"curation input not found: {path}")
        found, left_out = _files_of(path, forced, source=spec, kind=kind)
        files.extend(found)
        if left_out:
            skipped[spec] = dict(sorted(left_out.items()))
    for item in files:
        if item.format == "parquet":
            _check_parquet_schema(item.path, text_field)
    if not files and not hubs:
        raise ValueError(f"no readable files in the curation inputs: {', '.join(map(str, specs))}")
    if not hubs and all(item.size == 0 for item in files):
        # caught before any work, so an empty input leaves no half-built output folder behind
        shown = ", ".join(item.path for item in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        raise ValueError(f"curation input {shown}: empty (0 bytes) (expected documents to curate)")
    return Inputs(files, hubs, skipped)


def _files_of(
    path: Path, forced: str | None, source: str, kind: str | None
) -> tuple[list[InputFile], Counter]:
    """The files of one input, and the files left out of it by reason (path or extension)."""
    if path.is_file():
        fmt = forced or format_of_file(path)
        if fmt is None:
            raise ValueError(
                f"curation input {path}: cannot tell its format from the extension; name it FORMAT:PATH "
                f"with FORMAT one of {', '.join(FORMATS)}"
            )
        return [InputFile(str(path), fmt, source, path.name, path.stat().st_size, kind)], Counter()
    as_code = forced == "code" or (forced is None and is_git_checkout(path))
    license_id = repository_license(path)  # a LICENSE/COPYING file covers every file of the folder
    found: list[InputFile] = []
    left_out: Counter = Counter()
    hidden = 0 if as_code else _hidden_count(path)  # git ls-files lists no .git; the walk skips dot paths
    if hidden:
        left_out["path_hidden"] = hidden
    for rel in repository_files(path) if as_code else _walk(path):
        full = path / rel
        if not full.is_file():
            continue
        if as_code:
            reason = skipped_by_path(rel)
            if reason is None and not (code_language(rel) or is_prose_file(rel)):
                reason = "extension_unsupported"
            fmt = "code"
        else:
            fmt = forced or format_of_file(rel)
            reason = None if fmt else "extension_unsupported"
            if fmt == "code" and reason is None:
                reason = skipped_by_path(rel)
        if reason is not None:
            left_out[reason] += 1
            continue
        found.append(InputFile(str(full), fmt, source, rel.as_posix(), full.stat().st_size, kind, license_id))
    if left_out:
        logger.info(
            "%s: left out %d file(s): %s",
            path,
            sum(left_out.values()),
            ", ".join(f"{k} {v}" for k, v in sorted(left_out.items())),
        )
    if not found:
        raise ValueError(
            f"curation input {path}: no readable files (text, jsonl, parquet, warc or code) inside"
        )
    return found, left_out


def _hidden_count(folder: Path) -> int:
    return sum(
        1
        for p in folder.rglob("*")
        if p.is_file() and any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _walk(folder: Path) -> list[Path]:
    return sorted(
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _check_parquet_schema(path: str, text_field: str) -> None:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as err:  # pyarrow raises several types for a damaged footer
        logger.warning("%s: unreadable parquet footer (%s); it will be skipped", path, err)
        return
    if text_field not in names:
        raise ValueError(f"{path}: no column {text_field!r} (data.text_field); columns: {', '.join(names)}")


def _open_hub_dataset(name: str, split: str):
    """``load_dataset(..., streaming=True)``: a Hub id, a local dataset folder, or an hf:// file path."""
    from datasets import load_dataset

    try:
        if name.startswith("hf://"):
            stem = name.removesuffix(".gz")
            builder = {
                "parquet": "parquet",
                "jsonl": "json",
                "json": "json",
                "csv": "csv",
                "txt": "text",
            }.get(stem.rsplit(".", 1)[-1], "parquet")
            return load_dataset(builder, data_files=name, split=split, streaming=True)
        return load_dataset(name, split=split, streaming=True)
    except Exception as err:  # datasets raises many types (offline, missing, bad split)
        raise FileNotFoundError(f"Hub dataset {name!r} (split {split!r}) cannot be opened: {err}") from err


def assign_files(files: list[InputFile], world_size: int) -> list[list[InputFile]]:
    """Spread files over tasks by size (largest first onto the lightest task), deterministically."""
    shards: list[list[InputFile]] = [[] for _ in range(world_size)]
    loads = [0] * world_size
    for item in sorted(files, key=lambda f: (-f.size, f.path)):
        lightest = min(range(world_size), key=lambda r: (loads[r], r))
        shards[lightest].append(item)
        loads[lightest] += item.size + 1
    return [sorted(shard, key=lambda f: f.path) for shard in shards]


class SourceReader(PipelineStep):
    """Read this task's share of the inputs into documents with ``source``/``kind`` metadata."""

    type = "📖 - READER"
    name = "📚 Sources"

    def __init__(
        self,
        inputs: Inputs,
        text_field: str = "text",
        id_field: str = "id",
        hf_split: str = "train",
        max_doc_bytes: int = 10_000_000,
        code_max_file_bytes: int = 1_000_000,
        text_split_bytes: int = 32_768,
        strip_gutenberg: bool = True,
        progress: bool = True,
    ):
        super().__init__()
        self.files = list(inputs.files)
        self.hubs = list(inputs.hubs)
        self.skipped_files = inputs.skipped
        self.text_field = text_field
        self.id_field = id_field
        self.hf_split = hf_split
        self.max_doc_bytes = max_doc_bytes
        self.code_max_file_bytes = code_max_file_bytes
        self.text_split_bytes = text_split_bytes
        self.strip_gutenberg = strip_gutenberg
        self.progress = progress
        self._warnings: dict[str, int] = {}

    # ---- accounting -------------------------------------------------------------------------
    def skip(self, item: InputFile | HubInput, where: str, reason: str, detail: str = "") -> None:
        """Count a skipped document (or file) under ``reason`` and warn, naming file and line."""
        self.stat_update(f"skipped:{reason}", f"skipped:{reason}|{item.source}")
        key = getattr(item, "path", item.source)
        seen = self._warnings.get(key, 0)
        self._warnings[key] = seen + 1
        if seen < MAX_WARNINGS_PER_FILE:
            logger.warning("%s: skipped (%s)%s", where, reason, f": {detail}" if detail else "")
        elif seen == MAX_WARNINGS_PER_FILE:
            logger.warning("%s: further skips in this file are counted but not logged", key)

    def make_doc(
        self, item: InputFile | HubInput, text: str, doc_id: str, kind: str, **metadata: Any
    ) -> Document:
        metadata = {**metadata, "source": item.source, "kind": item.kind or kind}
        license_id = getattr(item, "license", None)
        if license_id:
            metadata["license"] = license_id
        doc = Document(text=text, id=doc_id, metadata=metadata)
        count(self, doc, "out", len(text.encode("utf-8", "surrogatepass")))
        return doc

    # ---- the step ---------------------------------------------------------------------------
    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        if rank == 0:  # files left out by path or extension, counted once
            for source, reasons in self.skipped_files.items():
                for reason, n in reasons.items():
                    self.stat_update(f"files_skipped:{reason}", f"files_skipped:{reason}|{source}", value=n)
        shard = assign_files(self.files, world_size)[rank]
        readers = {
            "text": self.read_text,
            "jsonl": self.read_jsonl,
            "parquet": self.read_parquet,
            "warc": self.read_warc,
            "code": self.read_code,
        }
        for item in tqdm(
            shard, desc=f"task {rank}: files", unit="file", disable=not self.progress or not shard
        ):
            self.stat_update("input_files", f"input_files|{item.source}")
            yield from readers[item.format](item)
        for hub in self.hubs:
            yield from self.read_hub(hub, rank, world_size)

    # ---- plain text and Markdown: books and docs, split into parts of a sensible size ----------
    def read_text(self, item: InputFile) -> Iterator[Document]:
        is_docs = item.path.lower().endswith(DOCS_SUFFIXES)
        fmt = "markdown" if item.path.lower().endswith((".md", ".markdown")) else "text"
        part = 0
        with open(item.path, "rb") as f:
            for first_line, chunk in self._chunks(item, f):
                decoded = decode_text(chunk)
                if decoded is None:
                    self.skip(
                        item,
                        f"{item.path}:{first_line}",
                        "invalid_encoding",
                        "not UTF-8, no encoding detected",
                    )
                    continue
                text, encoding = decoded
                text = text.replace("\r\n", "\n").replace("\r", "\n")
                if self.strip_gutenberg:
                    text = strip_gutenberg(text)
                if not text.strip():
                    self.skip(item, f"{item.path}:{first_line}", "empty")
                    continue
                for piece in split_text(text, self.text_split_bytes):
                    doc_id = f"{item.source}/{item.relpath}" + (f"#{part}" if part else "")
                    part += 1
                    metadata = {"format": fmt, "path": item.relpath}
                    if encoding != "utf_8":
                        metadata["encoding"] = encoding
                    yield self.make_doc(item, piece, doc_id, "docs" if is_docs else "book", **metadata)

    def _chunks(self, item: InputFile, f: IO[bytes]) -> Iterator[tuple[int, bytes]]:
        """Whole file when small; else runs of lines up to ``max_doc_bytes`` (too-long lines skipped)."""
        if item.size <= self.max_doc_bytes:
            yield 1, f.read()
            return
        buf: list[bytes] = []
        size, first = 0, 1
        for lineno, line in self._lines(item, f):
            if line is None:
                continue
            if size + len(line) > self.max_doc_bytes and buf:
                yield first, b"".join(buf)
                buf, size = [], 0
            if not buf:
                first = lineno
            buf.append(line)
            size += len(line)
        if buf:
            yield first, b"".join(buf)

    def _lines(self, item: InputFile, f: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
        """Numbered lines, never holding more than ``max_doc_bytes`` of one line in memory.

        A line over the limit is consumed in pieces, counted as skipped and yielded as None.
        A truncated or corrupt compressed stream ends the file with a counted skip.
        """
        lineno = 0
        try:
            while True:
                line = f.readline(self.max_doc_bytes + 1)
                if not line:
                    return
                lineno += 1
                if len(line) > self.max_doc_bytes and not line.endswith(b"\n"):
                    while line and not line.endswith(b"\n"):
                        line = f.readline(1 << 20)
                    self.skip(
                        item, f"{item.path}:{lineno}", "too_long", f"over max_doc_bytes={self.max_doc_bytes}"
                    )
                    yield lineno, None
                    continue
                yield lineno, line
        except _READ_DECODE_ERRORS as err:
            self.skip(item, f"{item.path}:{lineno + 1}", "truncated_file", f"{type(err).__name__}: {err}")

    # ---- jsonl / jsonl.gz: one document per line -----------------------------------------------
    def read_jsonl(self, item: InputFile) -> Iterator[Document]:
        with self._open(item) as f:
            for lineno, line in self._lines(item, f):
                if line is None or not line.strip():
                    continue
                where = f"{item.path}:{lineno}"
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as err:
                    reason = "invalid_utf8" if "utf-8" in str(err).lower() else "malformed_json"
                    self.skip(item, where, reason, str(err))
                    continue
                doc = self._record_to_doc(item, record, where, f"{item.relpath}:{lineno}")
                if doc is not None:
                    yield doc

    def _open(self, item: InputFile) -> IO[bytes]:
        """The file's bytes; a ``.gz`` through :class:`GzipMembers`, which survives corrupt members."""
        if not item.path.endswith(".gz"):
            return open(item.path, "rb")

        def on_skip(where: str, reason: str, detail: str) -> None:
            self.skip(item, f"{item.path}:{where}", reason, detail)

        return io.BufferedReader(GzipMembers(open(item.path, "rb"), on_skip), buffer_size=1 << 16)

    def _record_to_doc(self, item: InputFile | HubInput, record: Any, where: str, fallback_id: str):
        if not isinstance(record, dict):
            self.skip(item, where, "malformed_json", f"expected a JSON object, got {type(record).__name__}")
            return None
        text = record.get(self.text_field)
        if not isinstance(text, str):
            self.skip(item, where, "no_text_field", f"no string field {self.text_field!r} (data.text_field)")
            return None
        if not text.strip():
            self.skip(item, where, "empty")
            return None
        if len(text) > self.max_doc_bytes:  # chars <= bytes: a cheap first check
            self.skip(item, where, "too_long", f"over max_doc_bytes={self.max_doc_bytes}")
            return None
        raw_id = record.get(self.id_field)
        doc_id = str(raw_id) if isinstance(raw_id, (str, int)) else f"{item.source}/{fallback_id}"
        metadata = {
            k: v
            for k, v in record.items()
            if k not in (self.text_field, self.id_field, "kind") and isinstance(v, (str, int, float, bool))
        }
        kind = record.get("kind") if record.get("kind") in SOURCE_KINDS else "web"
        return self.make_doc(item, text, doc_id, kind, **metadata)

    # ---- parquet --------------------------------------------------------------------------------
    def read_parquet(self, item: InputFile) -> Iterator[Document]:
        import pyarrow.parquet as pq

        row = 0
        try:
            pf = pq.ParquetFile(item.path)
            columns = [
                c for c in pf.schema_arrow.names if c in (self.text_field, self.id_field, "url", "domain")
            ]
            for batch in pf.iter_batches(batch_size=1024, columns=columns):
                for record in batch.to_pylist():
                    row += 1
                    doc = self._record_to_doc(item, record, f"{item.path}:row {row}", f"{item.relpath}:{row}")
                    if doc is not None:
                        yield doc
        except Exception as err:  # pyarrow raises OSError, ArrowInvalid, ... for damaged files
            self.skip(item, f"{item.path}:row {row + 1}", "corrupt_file", f"{type(err).__name__}: {err}")

    # ---- WARC / WET: HTML responses (extracted later by trafilatura) and WET conversions --------
    def read_warc(self, item: InputFile) -> Iterator[Document]:
        """Every record counted by type and content type; after damage, resume at the next record."""
        counter = [0]
        with open(item.path, "rb") as f:
            offset: int | None = 0
            while offset is not None:
                offset = yield from self._warc_from(item, f, offset, counter)

    def _warc_from(self, item: InputFile, f: IO[bytes], start: int, counter: list[int]):
        """Read records from byte ``start``; return where to resume after damage, or None at the end."""
        from warcio.archiveiterator import ArchiveIterator
        from warcio.exceptions import ArchiveLoadFailed

        f.seek(start)
        archive = ArchiveIterator(f, arc2warc=True)
        records = iter(archive)
        while True:
            in_record = False
            try:
                record = next(records)
                counter[0] += 1
                in_record = True
                doc = self._warc_record_to_doc(item, record, counter[0])
            except StopIteration:
                break
            except (ArchiveLoadFailed, *_READ_DECODE_ERRORS) as err:
                # a record that could not be read to its end, or damage between records
                reason = "warc_damaged_record" if in_record else "warc_damaged_data"
                where = f"{item.path}:record {counter[0] + (not in_record)}"
                self.skip(item, where, reason, f"{type(err).__name__}: {err}")
                return self._resume_warc(item, f, start + max(archive.offset, 0) + 1)
            if doc is not None:
                yield doc
        end = start + archive.offset
        if end >= item.size:
            return None
        # warcio ends quietly at a cut gzip member: unread bytes at the end mean a lost record
        where = f"{item.path}:record {counter[0] + 1}"
        self.skip(item, where, "warc_truncated_tail", f"{item.size - end} bytes after the last record")
        return self._resume_warc(item, f, end + 1)

    @staticmethod
    def _resume_warc(item: InputFile, f: IO[bytes], start: int) -> int | None:
        offset = _next_warc_record(f, start)
        if offset is not None:
            logger.warning("%s: reading resumes at byte %d", item.path, offset)
        return offset

    def _warc_record_to_doc(self, item: InputFile, record, index: int) -> Document | None:
        headers = record.rec_headers
        self.stat_update(f"warc_records:{record.rec_type}")
        where = f"{item.path}:record {index}"
        if record.rec_type not in ("response", "conversion"):
            self.skip(item, where, f"warc_{record.rec_type}_record")
            return None
        url = headers.get_header("WARC-Target-URI")
        if record.rec_type == "response" and record.http_headers is None:
            _parse_http_headers(record)
        if record.rec_type == "response":
            http = record.http_headers
            content_type = (http.get_header("Content-Type") if http else None) or ""
        else:
            content_type = headers.get_header("Content-Type") or "text/plain"
        mime = content_type.split(";")[0].strip().lower() or "unknown"
        self.stat_update(f"warc_content_types:{mime}")
        if record.rec_type == "response":
            status = record.http_headers.get_statuscode() if record.http_headers else None
            if status != "200":
                self.skip(item, where, f"http_status_{status or 'none'}", url or "")
                return None
            if "html" not in mime:
                self.skip(item, where, "warc_not_html", f"{url}: {mime}")
                return None
        payload = record.content_stream().read()
        if getattr(record.raw_stream, "limit", 0):  # fewer bytes than Content-Length: cut record
            self.skip(item, where, "warc_truncated_record", f"{url}: {record.raw_stream.limit} bytes missing")
            return None
        declared = None
        if "charset=" in content_type.lower():
            declared = content_type.lower().split("charset=", 1)[1].split(";")[0].strip(" \"'") or None
        decoded = decode_payload(payload, declared)
        if decoded is None:
            self.skip(item, where, "invalid_encoding", url or "")
            return None
        text = decoded
        if not text.strip():
            self.skip(item, where, "empty", url or "")
            return None
        doc_id = headers.get_header("WARC-Record-ID") or f"{item.source}/{item.relpath}#{index}"
        metadata = {"format": "warc", "url": url, "date": headers.get_header("WARC-Date")}
        if record.rec_type == "response":
            metadata["html"] = True
        return self.make_doc(
            item, text, doc_id, "web", **{k: v for k, v in metadata.items() if v is not None}
        )

    # ---- source code, and the prose files of a repository (docs) -------------------------------
    def read_code(self, item: InputFile) -> Iterator[Document]:
        where = item.path
        if item.size > self.code_max_file_bytes:
            self.skip(item, where, "code_too_large", f"{item.size} bytes > code_max_file_bytes")
            return
        raw = Path(item.path).read_bytes()
        if b"\0" in raw[:8192]:
            self.skip(item, where, "binary")
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad_line = raw.count(b"\n", 0, err.start) + 1
            self.skip(item, f"{where}:{bad_line}", "invalid_utf8", str(err))
            return
        if not text.strip():
            self.skip(item, where, "empty")
            return
        if generated_by_content(item.relpath, raw):
            self.skip(item, where, "generated")
            return
        prose = is_prose_file(item.relpath)
        yield self.make_doc(
            item,
            text,
            f"{item.source}/{item.relpath}",
            "docs" if prose else "code",
            format="text" if prose else "code",
            path=item.relpath,
            language=code_language(item.relpath) or "text",
        )

    # ---- Hugging Face datasets (streaming) -------------------------------------------------------
    def read_hub(self, hub: HubInput, rank: int, world_size: int) -> Iterator[Document]:
        from datasets.distributed import split_dataset_by_node

        dataset = split_dataset_by_node(
            _open_hub_dataset(hub.name, self.hf_split), rank=rank, world_size=world_size
        )
        for index, record in enumerate(
            tqdm(dataset, desc=f"task {rank}: {hub.name}", unit="doc", disable=not self.progress)
        ):
            doc = self._record_to_doc(hub, record, f"{hub.name}:{index}", f"{rank}-{index}")
            if doc is not None:
                yield doc


def _parse_http_headers(record) -> None:
    """warcio parses HTTP headers only for http(s) URIs; a response of another URI scheme (real
    archives hold ``dns:``, tool-specific ones) still carries them when its type is application/http."""
    from warcio.statusandheaders import StatusAndHeadersParser, StatusAndHeadersParserException

    if "application/http" not in (record.rec_headers.get_header("Content-Type") or ""):
        return
    try:
        record.http_headers = StatusAndHeadersParser(["HTTP/1.0", "HTTP/1.1"]).parse(record.raw_stream)
    except (StatusAndHeadersParserException, ValueError):
        return


# ---- decoding ---------------------------------------------------------------------------------
def decode_text(raw: bytes) -> tuple[str, str] | None:
    """``(text, encoding)``: UTF-8 (a BOM dropped), else charset-normalizer's best guess, else None."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), "utf_8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None:
        return None
    return str(best), best.encoding


def decode_payload(payload: bytes, declared: str | None) -> str | None:
    """A web page's text as datatrove decodes it: the declared charset, then UTF-8, then detection."""
    for charset in (declared, "utf-8"):
        if charset:
            try:
                return payload.decode(charset)
            except (UnicodeDecodeError, LookupError):
                continue
    decoded = decode_text(payload)
    return decoded[0] if decoded else None


# ---- Project Gutenberg boilerplate and splitting long texts -----------------------------------
_GUTENBERG_START = re.compile(
    r"^\*{3} ?START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK[^\n]*(?:\n[^\n]*\*{3})?[^\n]*\n", re.I | re.M
)
_GUTENBERG_END = re.compile(
    r"^(?:\*{3} ?END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK|End of (?:the |this )?Project Gutenberg)",
    re.I | re.M,
)


def strip_gutenberg(text: str) -> str:
    """The text between Project Gutenberg's ``*** START OF ...`` and ``*** END OF ...`` lines.

    Text without the markers is returned unchanged; the header (title page data, the license
    pointer) and the footer (the full Project Gutenberg license) are not the book.
    """
    start = _GUTENBERG_START.search(text)
    if start is None:
        return text
    body = text[start.end() :]
    end = _GUTENBERG_END.search(body)
    return body[: end.start()] if end else body


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_HEADING = re.compile(
    r"(?:CHAPTER|Chapter|BOOK|Book|PART|Part|ACT|Act|SCENE|Scene|CANTO|Canto|LETTER|Letter|STAVE|Stave)"
    r"\b[ .]*(?:[IVXLCDM]+|\d+|[A-Z][A-Za-z-]*)\b[^\n]{0,60}"
)


def split_text(text: str, target: int) -> list[str]:
    """``text`` cut into consecutive parts of about ``target`` UTF-8 bytes; the parts join to it.

    A part ends before a chapter heading (a one-line paragraph such as ``CHAPTER IV.``) once it holds
    half the target, else before the paragraph that would take it past the target; a paragraph
    longer than the target is cut at line ends. A short last part joins the one before it.
    """
    if len(text.encode("utf-8", "surrogatepass")) <= target:
        return [text]
    # units: (start, end, is_heading) spans covering the text, each paragraph with its break after it
    units: list[tuple[int, int, bool]] = []
    start = 0
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.end() if match else len(text)
        if end > start:
            para = text[start:end].strip()
            units.extend(
                _line_units(text, start, end, target, "\n" not in para and bool(_HEADING.fullmatch(para)))
            )
        start = end
    parts: list[tuple[int, int]] = []
    part_start, size = 0, 0
    for begin, end, heading in units:
        n = len(text[begin:end].encode("utf-8", "surrogatepass"))
        if size and (size + n > target or (heading and size >= target // 2)):
            parts.append((part_start, begin))
            part_start, size = begin, 0
        size += n
    parts.append((part_start, len(text)))
    if len(parts) > 1 and len(text[parts[-1][0] :].encode("utf-8", "surrogatepass")) < target // 4:
        parts[-2:] = [(parts[-2][0], len(text))]
    return [text[a:b] for a, b in parts]


def _line_units(text: str, start: int, end: int, target: int, heading: bool) -> list[tuple[int, int, bool]]:
    """One unit for a paragraph that fits in ``target`` bytes, else runs of its lines that do."""
    if len(text[start:end].encode("utf-8", "surrogatepass")) <= target:
        return [(start, end, heading)]
    units, begin = [], start
    while begin < end:
        stop = text.find("\n", begin, end)
        stop = end if stop < 0 else stop + 1
        if units and units[-1][1] == begin and len(text[units[-1][0] : stop].encode()) <= target:
            units[-1] = (units[-1][0], stop, False)
        else:
            units.append((begin, stop, False))
        begin = stop
    return units


# ---- damaged compressed files ---------------------------------------------------------------
_GZIP_MAGIC = b"\x1f\x8b\x08"


class GzipMembers(io.RawIOBase):
    """A gzip stream read member by member that survives a corrupt member.

    Python's ``gzip`` stops at the first bad member, losing every member after it. Here a member
    that fails to decompress is reported once through ``on_skip(where, reason, detail)`` and
    reading resumes at the next gzip header that starts a valid member; a newline is inserted at
    the cut so a partial line cannot merge with the next member's first line. A stream that ends
    inside a member is reported as ``truncated_file``.
    """

    def __init__(self, raw: IO[bytes], on_skip, block: int = 1 << 16):
        super().__init__()
        self.raw = raw
        self.on_skip = on_skip
        self.block = block
        self._pending = b""  # compressed bytes read from raw but not yet fed
        self._out = b""
        self._decomp = zlib.decompressobj(31)
        self._member_start = 0  # file offset of the current member
        self._fed = 0  # file offset of the first byte in _pending
        self._eof = False
        self._fresh = True  # no byte of the current member fed to the decompressor yet

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer) -> int:
        while not self._out and not self._eof:
            self._fill()
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _fill(self) -> None:
        if not self._pending:
            self._pending = self.raw.read(self.block)
            if not self._pending:
                if not self._fresh:
                    self.on_skip(
                        f"byte {self._member_start}", "truncated_file", "the file ends inside a gzip member"
                    )
                self._eof = True
                return
        chunk, self._pending = self._pending, b""
        self._fresh = False
        try:
            out = self._decomp.decompress(chunk)
        except zlib.error as err:
            self.on_skip(f"byte {self._member_start}", "corrupt_gzip_member", str(err))
            self._out += b"\n"
            self._resync(self._member_start + 1)
            return
        self._out += out
        if self._decomp.eof:
            rest = self._decomp.unused_data
            self._member_start = self._fed + len(chunk) - len(rest)
            self._fed = self._member_start
            self._pending = rest
            self._decomp = zlib.decompressobj(31)
            self._fresh = True
            if not rest:
                nxt = self.raw.read(self.block)
                self._pending = nxt
                if not nxt:
                    self._eof = True
        else:
            self._fed += len(chunk)

    def _resync(self, start: int) -> None:
        """Find the next offset >= ``start`` where a gzip member decompresses; continue there."""
        position = start
        while True:
            self.raw.seek(position)
            window = self.raw.read(1 << 20)
            if len(window) < len(_GZIP_MAGIC):
                self._eof = True
                return
            hit = window.find(_GZIP_MAGIC)
            if hit < 0:
                position += len(window) - len(_GZIP_MAGIC) + 1
                continue
            candidate = position + hit
            self.raw.seek(candidate)
            probe = self.raw.read(1 << 16)
            try:
                zlib.decompressobj(31).decompress(probe, 64)
            except zlib.error:
                position = candidate + 1
                continue
            self.raw.seek(candidate)
            self._member_start = self._fed = candidate
            self._pending = b""
            self._decomp = zlib.decompressobj(31)
            self._fresh = True
            return


def _next_warc_record(f: IO[bytes], start: int) -> int | None:
    """Offset >= ``start`` of the next intact-looking WARC record (gzip member or plain), or None."""
    position = start
    while True:
        f.seek(position)
        window = f.read(1 << 20)
        if len(window) < 8:
            return None
        hits = [i for i in (window.find(_GZIP_MAGIC), window.find(b"WARC/1.")) if i >= 0]
        if not hits:
            position += len(window) - 7
            continue
        candidate = position + min(hits)
        f.seek(candidate)
        probe = f.read(1 << 16)
        if probe.startswith(b"WARC/1."):
            return candidate
        try:
            if zlib.decompressobj(31).decompress(probe, 16).startswith(b"WARC/"):
                return candidate
        except zlib.error:
            pass
        position = candidate + 1
