"""Word splitting for the Gopher, C4 and FineWeb rules: spaCy's exact splits, fast; or a regex.

:class:`CachedSpacyTokenizer` (the default, ``word_tokenizer: spacy_cached``) gives exactly the
words of datatrove's stock spaCy tokenizer, at a fraction of its cost. spaCy's tokenizer cuts the
text at whitespace and splits each whitespace-free chunk on its own (special cases such as
``Mr.`` and ``don't``, prefixes, suffixes, infixes); datatrove then drops the whitespace tokens.
So the words of a text are the concatenated splits of its ``str.split()`` chunks, and since a
document repeats its chunks many times, each distinct chunk is given to spaCy's tokenizer once and
remembered. What datatrove pays for on top (a ``Doc`` per document, its sentencizer) is skipped.
A test checks the words against datatrove's own spaCy tokenizer on real books and web pages.

The regex tokenizer below (``word_tokenizer: regex``) needs no spaCy:

datatrove's quality filters split text with spaCy's blank English tokenizer, which costs most of
their running time (DESIGN.md measured 35–140 docs/s). The rules only need word *counts*, word
lengths, stop words and n-grams, so a regular expression that mimics spaCy's main splits
(punctuation apart, contractions ``do|n't``, ``it|'s``, hyphens inside words, numbers with
separators kept whole, URLs kept whole) reaches the same keep/drop decisions far faster;
``benchmarks/curate_speed.py`` measures the agreement against the stock spaCy-based filters.

An instance is passed to datatrove's filters as their ``language`` argument: datatrove's
``load_word_tokenizer`` accepts a ``WordTokenizer`` object there, and its ``split_into_words``
cache then shares one tokenization of a document across all filters of a pipeline.
"""

from __future__ import annotations

import re
from functools import lru_cache

from datatrove.utils.word_tokenizers import WordTokenizer

# Order matters: earlier alternatives win at the same position.
_WORD_RE = re.compile(
    r"""
    (?:https?://|www\.)\S+[^\s.,;:!?)\]"']    # URLs stay one token, as in spaCy
    | \d+(?:[.,:/]\d+)+                        # 3.14  1,000  10:30  1/2
    | [^\W\d_]+(?=n't\b)                        # "do" of don't (spaCy: do | n't)
    | n't\b
    | [Cc]an(?=not\b)                            # can | not
    | '(?:s|re|ve|ll|d|m|S|RE|VE|LL|D|M)\b      # 's 're 've ... as separate tokens
    | \w+(?:\.\w+)*\.(?=\s*[a-z,;])             # abbreviations: e.g. i.e. Mr. (before lowercase)
    | \w+
    | \.\.\.+ | --+ | [^\w\s]
    """,
    re.VERBOSE,
)
_SPLIT_PLAIN_WORDS = frozenset({"cannot", "Cannot"})
# A sentence ends at ., ! or ? (possibly repeated or followed by closing quotes/brackets) + space.
_SENT_END_RE = re.compile(r"""[.!?]+['"”’)\]]*(?=\s|$)""")


@lru_cache(maxsize=4)
def _split_words(text: str) -> list[str]:
    """Words of ``text``, remembered for the next few calls (callers must not modify the list).

    Several rules split the same document: datatrove's own ``split_into_words`` cache is shared
    with sentence splitting, and C4's per-line sentence calls evict the document from it before
    the FineWeb rule asks again.
    """
    # Text of plain alphanumeric words (MinHash's normalized text) needs no regex: on such a word
    # only "cannot" would be split by the pattern; every other word stays whole.
    words = text.split()
    if all(map(str.isalnum, words)) and _SPLIT_PLAIN_WORDS.isdisjoint(words):
        return words
    return _WORD_RE.findall(text)


# Chunk -> its spaCy words, shared by every tokenizer of the process: a worker that runs several
# tasks keeps what it learned. The split of a chunk never changes, so sharing is safe.
_CHUNKS: dict[str, list[str]] = {}


class CachedSpacyTokenizer(WordTokenizer):
    """datatrove's spaCy word splits (blank English: rules only, no model download), chunk by chunk."""

    max_cache = 1_000_000  # distinct chunks remembered before the cache starts over

    def __init__(self, language: str = "en"):
        if language != "en":
            raise ValueError(
                f"word_tokenizer spacy_cached: only English ('en') is built in, got {language!r}"
            )
        super().__init__(language)

    def _split_chunk(self, chunk: str) -> list[str]:
        from lmfoundry.data.curation.spacy_en import SPECIAL_CASES, TOKENIZER

        # ASCII letters only and no special case: no prefix, suffix or infix rule can apply
        if chunk.isascii() and chunk.isalpha() and chunk not in SPECIAL_CASES:
            words = [chunk]
        else:
            words = [token.text for token in TOKENIZER(chunk)]
        if len(_CHUNKS) >= self.max_cache:
            _CHUNKS.clear()
        _CHUNKS[chunk] = words
        return words

    def word_tokenize(self, text: str) -> list[str]:
        cache = _CHUNKS
        words: list[str] = []
        for chunk in text.split():
            split = cache.get(chunk)
            if split is None:
                split = self._split_chunk(chunk)
            if len(split) == 1:
                words.append(split[0])
            else:
                words.extend(split)
        return words

    # Sentences (only C4's ``split_paragraph: false`` asks): datatrove's own spaCy sentencizer.
    def sent_tokenize(self, text: str) -> list[str]:
        return self._stock.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self._stock.span_tokenize(text)

    @property
    def _stock(self) -> WordTokenizer:
        return load_spacy_tokenizer(self.language)

    # Passed as datatrove's ``language`` key of an lru_cache: equal tokenizers hash equally.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, CachedSpacyTokenizer) and other.language == self.language

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.language))


class RegexWordTokenizer(WordTokenizer):
    """English word/sentence splitting with one compiled regex: no model, no download."""

    def __init__(self, language: str = "en"):
        super().__init__(language)

    def word_tokenize(self, text: str) -> list[str]:
        return _split_words(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text[a:b].strip() for a, b in self.span_tokenize(text) if text[a:b].strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        start = 0
        for match in _SENT_END_RE.finditer(text):
            end = match.end()
            if text[start:end].strip():
                spans.append((start, end))
            start = end
        if text[start:].strip():
            spans.append((start, len(text)))
        return spans

    # Filters pass the tokenizer as datatrove's ``language`` key of an lru_cache: make equal
    # tokenizers hash equally so the cache survives pickling into worker processes.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegexWordTokenizer) and other.language == self.language

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.language))


def load_spacy_tokenizer(language: str = "en") -> WordTokenizer:
    """datatrove's stock spaCy tokenizer (needs the optional ``spacy`` package; no model download)."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    return load_word_tokenizer(language)
