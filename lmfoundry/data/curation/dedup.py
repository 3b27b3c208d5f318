"""Exact and MinHash near-duplicate removal across all sources, as datatrove pipeline steps.

Signatures and LSH buckets are datatrove's own MinHash stages (1 and 2; stage 1 with a bytes fix
for xxhash 4, :class:`MinhashSignature`). What lmfoundry adds:

* :class:`ExactDedupSignature`: one 64-bit hash of each document's normalized text (lowercased,
  whitespace collapsed), written per task next to the MinHash signatures.
* :class:`DedupClusters` replaces datatrove's MinHash stage 3 so the two kinds of duplicates agree:
  exact groups and MinHash pairs go into one union-find whose root is always the *first* document
  (lowest task, then position), so every cluster keeps exactly one member. A dropped document is
  labelled ``dedup:exact`` when an earlier document has the same normalized text, else
  ``dedup:minhash``.
* :class:`DedupFilter` re-reads each task's filtered documents in order and drops the removals.

Document positions are the order in which stage 1 wrote each task's filtered file, which is also
the order its signatures were computed in.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import unicodedata
from itertools import accumulate
from pathlib import Path

import numpy as np
import orjson
import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupSignature
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.utils.binaryio import read_tuples_from_file
from datatrove.utils.text import (
    MONTHS_PATTERN,
    NUMBERS_PATTERN,
    PUNCTUATION_TRANS,
    WEEKDAYS_PATTERN,
    TextNormConfig,
    ngrams,
    simplify_text,
)
from fsspec.compression import register_compression

from lmfoundry.data.curation.filters import count, utf8_len

logger = logging.getLogger(__name__)

EXACT_DTYPE = np.dtype([("hash", "<u8"), ("index", "<u4")])
REMOVE_DTYPE = np.dtype([("index", "<u4"), ("reason", "u1")])
REASONS = ("dedup:exact", "dedup:minhash")
_WS = re.compile(r"\s+")
_MERSENNE_61 = np.uint64((1 << 61) - 1)  # datatrove's MinHash modulus
_SIGNATURE_BLOCK = 512  # shingles per block of the signature computation (its arrays stay in cache)
VERIFY_DEFAULT_THRESHOLD = 0.75  # FineWeb's 14 x 8 bands are built for about this Jaccard
HASH_BUDGET = 128  # hashes per document that `similarity` may spend (FineWeb's default spends 112)


def detection_probability(similarity: float, num_buckets: int, hashes_per_bucket: int) -> float:
    """Chance that two documents of this Jaccard similarity share a bucket: 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - similarity**hashes_per_bucket) ** num_buckets


def bands_for_similarity(
    similarity: float, budget: int = HASH_BUDGET, recall: float = 0.9
) -> tuple[int, int]:
    """``(num_buckets, hashes_per_bucket)`` that catch pairs of Jaccard ``similarity`` with >= ``recall``.

    Among the band shapes within ``budget`` hashes that detect a pair at the target similarity with
    at least ``recall`` probability, the one with the fewest candidate pairs below it (the area
    under the detection curve from 0 to the target). Candidates below the target are then either
    accepted as near duplicates or, with ``verify: true``, checked by their true Jaccard.
    """
    grid = (np.arange(400) + 0.5) / 400 * similarity  # midpoints on [0, similarity]
    best: tuple[float, int, int] | None = None
    for b in range(1, budget + 1):
        for r in range(1, budget // b + 1):
            if detection_probability(similarity, b, r) < recall:
                continue
            false_area = float((1.0 - (1.0 - grid**r) ** b).mean())
            if best is None or false_area < best[0] - 1e-12:
                best = (false_area, b, r)
    if best is None:
        raise ValueError(
            f"data.dedup.similarity {similarity}: no band shape within {budget} hashes reaches it"
        )
    return best[1], best[2]


def detection_curve(num_buckets: int, hashes_per_bucket: int) -> str:
    """A small table: Jaccard similarity -> chance a pair is detected, for the README and the log."""
    rows = [f"{'jaccard':>8} {'detected':>9}"]
    for s in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        rows.append(f"{s:>8.2f} {detection_probability(s, num_buckets, hashes_per_bucket):>8.1%}")
    return f"{num_buckets} buckets x {hashes_per_bucket} hashes\n" + "\n".join(rows)


def normalized_hash(text: str) -> int:
    """Hash of the text with case and whitespace differences ignored."""
    return xxhash.xxh3_64_intdigest(_WS.sub(" ", text).strip().lower().encode("utf-8", "surrogatepass"))


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


class ExactDedupSignature(PipelineStep):
    """Record (normalized-text hash, position) of every document of this task."""

    type = "🫂 - DEDUP"
    name = "🔑 Exact signature"

    def __init__(self, output_folder: str | Path):
        super().__init__()
        self.output_folder = Path(output_folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        hashes: list[int] = []
        for doc in data:
            with self.track_time():
                hashes.append(normalized_hash(doc.text))
            yield doc
        records = np.empty(len(hashes), dtype=EXACT_DTYPE)
        records["hash"] = np.array(hashes, dtype=np.uint64)
        records["index"] = np.arange(len(hashes), dtype=np.uint32)
        save_npy_atomic(self.output_folder / f"{rank:05d}.npy", records)


class MinhashSignature(MinhashDedupSignature):
    """datatrove's MinHash stage 1 with the same signatures, shingled without per-n-gram joins.

    Each n-gram's hash is xxhash of its words joined by spaces, in UTF-8 (datatrove passes ``str``,
    which xxhash 4 rejects; xxhash 3 hashed its UTF-8 encoding, so these are datatrove's signatures).
    Instead of joining every n-gram anew, the words are joined once and each n-gram is a slice of
    that one byte string; and :func:`fast_simplify_text` normalizes the text. A test checks the
    shingles against :class:`StockMinhashSignature`.
    """

    def get_shingles(self, text: str) -> np.ndarray:
        words = self.word_tokenizer.word_tokenize(fast_simplify_text(text, self.config.norm_config))
        n = self.config.n_grams
        n_grams = len(words) - n + 1
        if n_grams <= 0:
            return np.empty((0, 1), dtype=np.uint64)
        encoded = [word.encode("utf-8", "surrogatepass") for word in words]
        joined = b" ".join(encoded)
        # Word i starts at (bytes of the words before it) + i separating spaces.
        starts = [total + i for i, total in enumerate(accumulate(map(len, encoded), initial=0))]
        ends = [start - 1 for start in starts[n:]]  # n-gram i ends before word i + n's separator
        hash_bytes = (
            xxhash.xxh32_intdigest if self.config.hash_config.precision == 32 else xxhash.xxh64_intdigest
        )
        grams = map(joined.__getitem__, map(slice, starts[:n_grams], ends))
        return np.fromiter(map(hash_bytes, grams), dtype=np.uint64, count=n_grams).reshape((-1, 1))


    def get_signature(self, shingles: np.ndarray) -> list[list[int]]:
        """datatrove's signature (the same numbers), with its ``% (2**61 - 1)`` done without division.

        datatrove computes ``(shingle * a + b) % p`` in wrapping uint64 arithmetic, ``p = 2**61 - 1``,
        then the minimum per hash. For such a Mersenne prime ``x % p`` is ``(x & p) + (x >> 61)``,
        less ``p`` once if that reaches ``p`` (since ``2**61 = 1 (mod p)``), a few bitwise passes
        instead of an integer division per element; blocks of shingles keep the work in cache.
        """
        a, b = self.parameters
        mask = np.uint64(self.config.hash_config.max) if self.config.hash_config.precision == 32 else None
        best = np.full(a.shape[1], np.iinfo(np.uint64).max, dtype=np.uint64)
        for start in range(0, len(shingles), _SIGNATURE_BLOCK):
            x = shingles[start : start + _SIGNATURE_BLOCK] * a
            x += b
            rest = x & _MERSENNE_61
            x >>= np.uint64(61)
            rest += x
            np.subtract(rest, _MERSENNE_61, out=rest, where=rest >= _MERSENNE_61)
            if mask is not None:  # 32-bit hashes: datatrove masks each value before the minimum
                rest &= mask
            np.minimum(best, rest.min(axis=0), out=best)
        return [
            x.tolist()
            for x in np.split(best.astype(self.config.hash_config.np_dtype), self.config.num_buckets)
        ]


class StockMinhashSignature(MinhashDedupSignature):
    """datatrove's own MinHash shingling (``stock_steps: true``), the reference for ours.

    Only the hashing input differs from datatrove's code: each n-gram's UTF-8 bytes, because
    datatrove passes ``str``, which xxhash 4 rejects (xxhash 3 hashed its UTF-8 encoding).
    """

    def get_shingles(self, text: str) -> np.ndarray:
        words = self.word_tokenizer.word_tokenize(simplify_text(text, self.config.norm_config))
        hash_bytes = (
            xxhash.xxh32_intdigest if self.config.hash_config.precision == 32 else xxhash.xxh64_intdigest
        )
        return np.fromiter(
            (
                hash_bytes(" ".join(gram).encode("utf-8", "surrogatepass"))
                for gram in ngrams(words, self.config.n_grams)
            ),
            dtype=np.uint64,
        ).reshape((-1, 1))


class AllBuckets(PipelineStep):
    """datatrove's MinHash bucket stage (its stage 2) for every bucket, in one task.

    datatrove runs one task per bucket, right for big inputs where buckets run in parallel; but
    each task pays the executor's set-up (task loggers, stats and completion files), and on a
    small corpus the 14 tasks cost more than their work. Here the same step runs bucket after
    bucket, as task ``b`` of ``num_buckets`` would, writing the same files.
    """

    type = "🫂 - DEDUP"
    name = "🎯 MinHash stage 2, all buckets"

    def __init__(self, buckets: MinhashDedupBuckets):
        super().__init__()
        self.buckets = buckets

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> None:
        num_buckets = self.buckets.config.num_buckets
        with self.track_time():
            for bucket in range(num_buckets):
                self.buckets.run(None, bucket, num_buckets)


def fast_simplify_text(text: str, config: TextNormConfig) -> str:
    """datatrove's ``simplify_text`` (same output), without its two slow passes on typical text.

    Whitespace is collapsed with ``str.split`` (the same characters as the regex ``\\s``), and the
    per-character diacritics pass is skipped on ASCII text, where it cannot change anything.
    """
    if config.lowercase:
        text = text.lower()
    if config.norm_numbers:
        text = NUMBERS_PATTERN.sub("0", text)
    if config.norm_weekdays:
        text = WEEKDAYS_PATTERN.sub("WEEKDAY", text)
    if config.norm_monthnames:
        text = MONTHS_PATTERN.sub("MONTH", text)
    if config.remove_punctuation:
        text = text.translate(PUNCTUATION_TRANS)
    if config.norm_whitespace:
        text = " ".join(text.split())
    if config.norm_unicode_diacritics and not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return text.strip()


class _UnionFind:
    """Union-find over integer nodes whose root is always the smallest node of its set."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, node: int) -> int:
        root = node
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while node != root:  # path compression
            self.parent[node], node = root, self.parent.get(node, node)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            low, high = min(ra, rb), max(ra, rb)
            self.parent[high] = low
            self.parent.setdefault(low, low)


def _node(rank: int, index: int) -> int:
    return (rank << 32) | index


class DedupClusters(PipelineStep):
    """Cluster exact and near duplicates over all tasks; write each task's removals (1 task)."""

    type = "🫂 - DEDUP"
    name = "🧩 Duplicate clusters"

    def __init__(
        self,
        exact_folder: str | Path | None,
        minhash_dups_folder: str | Path | None,
        output_folder: str | Path,
        world_size: int,
        verify: dict | None = None,
    ):
        """``verify``: ``{threshold, filtered_folder, config, word_tokenizer}`` to keep a MinHash pair
        only when the true Jaccard similarity of the two documents' shingle sets reaches ``threshold``."""
        super().__init__()
        self.exact_folder = Path(exact_folder) if exact_folder else None
        self.minhash_dups_folder = Path(minhash_dups_folder) if minhash_dups_folder else None
        self.output_folder = Path(output_folder)
        self.source_world_size = world_size
        self.verify = verify

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        uf = _UnionFind()
        exact_dups: set[int] = set()
        with self.track_time():
            if self.exact_folder is not None:
                exact_dups = self._union_exact(uf)
            if self.minhash_dups_folder is not None:
                pairs = []
                for path in sorted(self.minhash_dups_folder.glob("*.dups")):
                    with open(path, "rb") as f:
                        pairs.extend(
                            (_node(f1, d1), _node(f2, d2))
                            for f1, d1, f2, d2 in read_tuples_from_file(f, "4I", lines_to_buffer=1000)
                        )
                if self.verify:
                    pairs = self._verified(pairs)
                for a, b in pairs:
                    uf.union(a, b)
                    self.stat_update("minhash_pairs")
            removals: dict[int, list[tuple[int, int]]] = {r: [] for r in range(self.source_world_size)}
            for node in list(uf.parent):
                if uf.find(node) != node:
                    reason = 0 if node in exact_dups else 1
                    removals[node >> 32].append((node & 0xFFFFFFFF, reason))
                    self.stat_update(REASONS[reason])
        for task, items in removals.items():
            array = np.array(sorted(items), dtype=REMOVE_DTYPE) if items else np.empty(0, dtype=REMOVE_DTYPE)
            save_npy_atomic(self.output_folder / f"{task:05d}.remove.npy", array)

    def _verified(self, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The candidate pairs whose shingle sets truly reach the Jaccard threshold."""
        wanted = {node for pair in pairs for node in pair}
        signer = MinhashSignature(
            str(self.output_folder), config=self.verify["config"], language=self.verify["word_tokenizer"]
        )
        shingles: dict[int, set[int]] = {}
        for task in sorted({node >> 32 for node in wanted}):
            path = Path(self.verify["filtered_folder"]) / f"{task:05d}.jsonl.gz"
            with gzip.open(path, "rb") as f:
                for index, line in enumerate(f):
                    node = _node(task, index)
                    if node in wanted:
                        shingles[node] = set(signer.get_shingles(orjson.loads(line)["text"]).ravel().tolist())
        kept = []
        for a, b in pairs:
            sa, sb = shingles.get(a, set()), shingles.get(b, set())
            union = len(sa | sb)
            if union and len(sa & sb) / union >= self.verify["threshold"]:
                kept.append((a, b))
            else:
                self.stat_update("minhash_pairs_rejected")
        return kept

    def _union_exact(self, uf: _UnionFind) -> set[int]:
        """Union every document with the first document of identical normalized text."""
        hashes, nodes = [], []
        for task in range(self.source_world_size):
            path = self.exact_folder / f"{task:05d}.npy"
            if not path.is_file():
                continue
            records = np.load(path)
            hashes.append(records["hash"])
            nodes.append((np.uint64(task) << np.uint64(32)) | records["index"].astype(np.uint64))
        if not hashes:
            return set()
        hash_all, node_all = np.concatenate(hashes), np.concatenate(nodes)
        order = np.lexsort((node_all, hash_all))
        hash_sorted, node_sorted = hash_all[order], node_all[order]
        is_dup = np.zeros(len(order), dtype=bool)
        is_dup[1:] = hash_sorted[1:] == hash_sorted[:-1]
        group_start = np.maximum.accumulate(np.where(~is_dup, np.arange(len(order)), 0))
        dups: set[int] = set()
        for position in np.flatnonzero(is_dup):
            node, first = int(node_sorted[position]), int(node_sorted[group_start[position]])
            uf.union(node, first)
            dups.add(node)
        return dups


def _gzip_level_1(infile, mode: str = "rb", **kwargs) -> gzip.GzipFile:
    return gzip.GzipFile(fileobj=infile, mode=mode, compresslevel=1, **kwargs)


FAST_GZIP = "gzip-level-1"
register_compression(FAST_GZIP, _gzip_level_1, [], force=True)  # a name only: no extension maps to it


class FilteredWriter(JsonlWriter):
    """Stage 1's surviving documents, read back once by :class:`DedupFilter`: gzip at level 1.

    datatrove's writers compress at gzip's slowest level (9), right for a corpus that is kept, but
    these files live only until the run ends; level 1 writes them several times faster for a
    slightly bigger temporary file. (A class of its own so that unpickling it in a worker imports
    this module, which registers the compression name with fsspec.)
    """

    def __init__(self, output_folder: str | Path):
        super().__init__(str(output_folder), output_filename="${rank}.jsonl.gz", compression=FAST_GZIP)


class DedupFilter(PipelineStep):
    """Read this task's filtered documents back in order and drop its duplicates."""

    type = "🫂 - DEDUP"
    name = "🗑 Dedup filter"

    def __init__(
        self,
        filtered_folder: str | Path,
        removals_folder: str | Path | None,
        exclusion_writer: DiskWriter | None = None,
    ):
        super().__init__()
        self.filtered_folder = Path(filtered_folder)
        self.removals_folder = Path(removals_folder) if removals_folder else None
        self.exclusion_writer = exclusion_writer

    def removals(self, rank: int) -> dict[int, str]:
        if self.removals_folder is None:
            return {}
        path = self.removals_folder / f"{rank:05d}.remove.npy"
        if not path.is_file():
            raise FileNotFoundError(f"duplicate list {path} is missing: rerun the curation to rebuild it")
        array = np.load(path)
        return {int(i): REASONS[int(r)] for i, r in zip(array["index"], array["reason"])}

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        path = self.filtered_folder / f"{rank:05d}.jsonl.gz"
        if not path.is_file():  # this task kept no document in stage 1
            return
        remove = self.removals(rank)
        with (
            gzip.open(path, "rb") as f,
            self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer,
        ):
            for index, line in enumerate(f):
                record = orjson.loads(line)
                doc = Document(text=record["text"], id=record["id"], metadata=record.get("metadata", {}))
                nbytes = utf8_len(doc.text)
                count(self, doc, "in", nbytes)
                reason = remove.get(index)
                if reason is None:
                    count(self, doc, "out", nbytes)
                    yield doc
                    continue
                count(self, doc, f"dropped:{reason}", nbytes)
                if writer:
                    doc.metadata["filter_reason"] = reason
                    writer.write(doc, rank)
