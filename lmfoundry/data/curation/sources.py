"""Reading raw sources into documents: text and Markdown, jsonl(.gz), parquet, WARC, code, the Hub.

Inputs are resolved in the driver (:func:`discover_inputs`), so a missing path or an unreadable
parquet schema is an error before any work starts. :class:`SourceReader` is the first datatrove
step of the pipeline: it spreads the files over the tasks by size and reads them defensively.
Damaged input never stops a task: each malformed JSON line, undecodable file, truncated gzip or
WARC, empty file or over-long document is skipped, counted under its reason, and logged with the
file and line it came from.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from tqdm import tqdm

from lmfoundry.data.curation.code import code_language, is_git_checkout, repository_files, skipped_by_path
from lmfoundry.data.curation.filters import count

logger = logging.getLogger(__name__)

KINDS = ("text", "jsonl", "parquet", "warc", "code")
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json.gz")
WARC_SUFFIXES = (".warc", ".warc.gz", ".arc.gz")
PARQUET_SUFFIXES = (".parquet",)
MAX_WARNINGS_PER_FILE = 5
_READ_DECODE_ERRORS = (EOFError, OSError, zlib.error, ValueError)


@dataclass(frozen=True)
class InputFile:
    """One file to read: where it is, how to read it, which input it came from."""

    path: str
    kind: str
    source: str
    relpath: str
    size: int


@dataclass(frozen=True)
class HubInput:
    """A Hugging Face dataset read in streaming mode (an id, a local dataset folder or an hf:// path)."""

    source: str
    name: str


def kind_of_file(path: Path) -> str | None:
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


def discover_inputs(
    specs: list[str], text_field: str, hf_split: str
) -> tuple[list[InputFile], list[HubInput]]:
    """Resolve input specs to files and Hub datasets; raise for anything that cannot be read."""
    files: list[InputFile] = []
    hubs: list[HubInput] = []
    for spec in specs:
        spec = str(spec)
        if spec.startswith(("hf:", "hf://")):
            name = spec if spec.startswith("hf://") else spec[len("hf:") :]
            _open_hub_dataset(name, hf_split)  # fail now, not inside a worker
            hubs.append(HubInput(source=spec, name=name))
            continue
        kind, _, rest = spec.partition(":")
        forced = kind if rest and kind in KINDS else None
        path = Path(rest if forced else spec).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"curation input not found: {path}")
        files.extend(_files_of(path, forced, source=spec))
    for item in files:
        if item.kind == "parquet":
            _check_parquet_schema(item.path, text_field)
    if not files and not hubs:
        raise ValueError(f"no readable files in the curation inputs: {', '.join(map(str, specs))}")
    return files, hubs


def _files_of(path: Path, forced: str | None, source: str) -> list[InputFile]:
    if path.is_file():
        kind = forced or kind_of_file(path)
        if kind is None:
            raise ValueError(
                f"curation input {path}: cannot tell its kind from the extension; name it KIND:PATH "
                f"with KIND one of {', '.join(KINDS)}"
            )
        return [InputFile(str(path), kind, source, path.name, path.stat().st_size)]
    as_code = forced == "code" or (forced is None and is_git_checkout(path))
    found: list[InputFile] = []
    unsupported = 0
    for rel in repository_files(path) if as_code else _walk(path):
        full = path / rel
        if not full.is_file():
            continue
        kind = ("code" if code_language(rel) else None) if as_code else (forced or kind_of_file(rel))
        if kind == "code" and skipped_by_path(rel):
            kind = None
        if kind is None:
            unsupported += 1
            continue
        found.append(InputFile(str(full), kind, source, rel.as_posix(), full.stat().st_size))
    if unsupported:
        logger.info(
            "%s: left out %d file(s) that are not text, data or source code we read", path, unsupported
        )
    if not found:
        raise ValueError(
            f"curation input {path}: no readable files (text, jsonl, parquet, warc or code) inside"
        )
    return found


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
    """Read this task's share of the inputs into documents with ``source``/``domain`` metadata."""

    type = "📖 - READER"
    name = "📚 Sources"

    def __init__(
        self,
        files: list[InputFile],
        hubs: list[HubInput] = (),
        text_field: str = "text",
        id_field: str = "id",
        hf_split: str = "train",
        max_doc_bytes: int = 10_000_000,
        code_max_file_bytes: int = 1_000_000,
        progress: bool = True,
    ):
        super().__init__()
        self.files = list(files)
        self.hubs = list(hubs)
        self.text_field = text_field
        self.id_field = id_field
        self.hf_split = hf_split
        self.max_doc_bytes = max_doc_bytes
        self.code_max_file_bytes = code_max_file_bytes
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

    def make_doc(self, item: InputFile | HubInput, text: str, doc_id: str, **metadata: Any) -> Document:
        metadata = {**metadata, "source": item.source}  # the input, not a field of the record
        doc = Document(text=text, id=doc_id, metadata=metadata)
        count(self, doc, "out", len(text.encode("utf-8", "surrogatepass")))
        return doc

    # ---- the step ---------------------------------------------------------------------------
    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
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
            self.stat_update("input_files")
            yield from readers[item.kind](item)
        for hub in self.hubs:
            yield from self.read_hub(hub, rank, world_size)

    # ---- plain text and Markdown: one document per file (long files split at line ends) ------
    def read_text(self, item: InputFile) -> Iterator[Document]:
        fmt = "markdown" if item.path.lower().endswith((".md", ".markdown")) else "text"
        part = 0
        with open(item.path, "rb") as f:
            for first_line, chunk in self._chunks(item, f):
                where = f"{item.path}:{first_line}"
                try:
                    text = chunk.decode("utf-8")
                except UnicodeDecodeError as err:
                    bad_line = first_line + chunk.count(b"\n", 0, err.start)
                    self.skip(item, f"{item.path}:{bad_line}", "invalid_utf8", str(err))
                    continue
                if not text.strip():
                    self.skip(item, where, "empty")
                    continue
                doc_id = f"{item.source}/{item.relpath}" + (f"#{part}" if part else "")
                part += 1
                yield self.make_doc(item, text, doc_id, domain="prose", format=fmt, path=item.relpath)

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
        opener = gzip.open if item.path.endswith(".gz") else open
        with opener(item.path, "rb") as f:
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
            if k not in (self.text_field, self.id_field) and isinstance(v, (str, int, float, bool))
        }
        metadata.setdefault("domain", "prose")
        return self.make_doc(item, text, doc_id, **metadata)

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

    # ---- WARC: HTML responses, extracted later by trafilatura ----------------------------------
    def read_warc(self, item: InputFile) -> Iterator[Document]:
        from warcio.archiveiterator import ArchiveIterator
        from warcio.exceptions import ArchiveLoadFailed

        records = 0
        with open(item.path, "rb") as f:
            archive = ArchiveIterator(f)
            try:
                for record in archive:
                    records += 1
                    doc = self._warc_record_to_doc(item, record, records)
                    if doc is not None:
                        yield doc
            except (ArchiveLoadFailed, *_READ_DECODE_ERRORS) as err:
                where = f"{item.path}:record {records + 1}"
                self.skip(item, where, "truncated_file", f"{type(err).__name__}: {err}")
                return
            # warcio ends quietly at a cut gzip member: unread bytes at the end mean a lost record
            if archive.offset < item.size:
                where = f"{item.path}:record {records + 1}"
                self.skip(
                    item, where, "truncated_file", f"{item.size - archive.offset} bytes after the last record"
                )

    def _warc_record_to_doc(self, item: InputFile, record, index: int) -> Document | None:
        if record.rec_type not in ("response", "conversion"):
            return None
        headers = record.rec_headers
        url = headers.get_header("WARC-Target-URI")
        where = f"{item.path}:record {index}"
        if record.rec_type == "response":
            content_type = (
                record.http_headers.get_header("Content-Type") if record.http_headers else None
            ) or ""
            if "html" not in content_type.lower():
                return None
        else:
            content_type = headers.get_header("Content-Type") or "text/plain"
        payload = record.content_stream().read()
        charset = "utf-8"
        if "charset=" in content_type.lower():
            charset = content_type.lower().split("charset=", 1)[1].split(";")[0].strip(" \"'") or "utf-8"
        try:
            text = payload.decode(charset)
        except (UnicodeDecodeError, LookupError) as err:
            self.skip(item, where, "invalid_encoding", f"{url}: {err}")
            return None
        if not text.strip():
            self.skip(item, where, "empty", url or "")
            return None
        doc_id = headers.get_header("WARC-Record-ID") or f"{item.source}/{item.relpath}#{index}"
        metadata = {"domain": "prose", "format": "warc", "url": url, "date": headers.get_header("WARC-Date")}
        if record.rec_type == "response":
            metadata["html"] = True
        return self.make_doc(item, text, doc_id, **{k: v for k, v in metadata.items() if v is not None})

    # ---- source code ----------------------------------------------------------------------------
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
        yield self.make_doc(
            item,
            text,
            f"{item.source}/{item.relpath}",
            domain="code",
            format="code",
            path=item.relpath,
            language=code_language(item.relpath),
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
