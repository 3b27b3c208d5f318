"""Word splitting for the Gopher, C4 and FineWeb rules: spaCy's exact splits, fast; or a regex.

:class:`CachedSpacyTokenizer` (the default, ``word_tokenizer: spacy_cached``) gives exactly the
words of datatrove's stock spaCy tokenizer, at a fraction of its cost. spaCy's tokenizer cuts the
text at whitespace and splits each whitespace-free chunk on its own (special cases such as
``Mr.`` and ``don't``, prefixes, suffixes, infixes); datatrove then drops the whitespace tokens.
So the words of a text are the concatenated splits of its ``str.split()`` chunks, and since a
document repeats its chunks many times, each distinct chunk is given to spaCy's tokenizer once and
remembered; the new chunks of a document go to spaCy in one call, and the commonest shapes (ASCII
letters, alone or before one closing mark) need no call at all. What datatrove pays for on top (a
``Doc`` per document with every word's lexical attributes) is skipped, and its sentences (C4
counts them per line) come from spaCy's sentencizer rule applied to the same cached splits.
Tests check words, sentence spans and sentences against datatrove's own spaCy tokenizer on real
books and web pages.

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
from itertools import chain

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
_OFFSETS = ["IDX", "LENGTH"]  # spaCy token attributes: character offset and length
_RUNS = re.compile(r"\S+|\s+")  # ``\s`` is exactly ``str.isspace``, spaCy's whitespace
# token text -> (is a sentence mark, is punctuation), for the sentencizer rule
_TOKEN_KINDS: dict[str, tuple[bool, bool]] = {}


class CachedSpacyTokenizer(WordTokenizer):
    """datatrove's spaCy word splits (blank English: rules only, no model download), chunk by chunk."""

    max_cache = 1_000_000  # distinct chunks remembered before the cache starts over

    def __init__(self, language: str = "en"):
        if language != "en":
            raise ValueError(
                f"word_tokenizer spacy_cached: only English ('en') is built in, got {language!r}"
            )
        super().__init__(language)

    def _learn(self, chunks: list[str]) -> None:
        """Split the distinct ``chunks`` not yet remembered, in one call of spaCy's tokenizer.

        A call costs far more than the splitting of one short chunk, so the new chunks of a document
        are joined by newlines and tokenized together. The newline separates them exactly: spaCy
        makes it a token of its own, no prefix, suffix or infix rule crosses whitespace, and no
        special case holds a newline next to other text, so no match can join two chunks.
        """
        from lmfoundry.data.curation.spacy_en import SPECIAL_CASES, TOKENIZER, TRAILING_PUNCTUATION

        cache = _CHUNKS
        hard = []
        for chunk in chunks:
            if chunk.isascii() and chunk not in SPECIAL_CASES:
                # ASCII letters only: no prefix, suffix or infix rule can apply
                if chunk.isalpha():
                    cache[chunk] = [chunk]
                    continue
                # ASCII letters and a closing mark ("word,"): the mark is cut off (spacy_en)
                core, mark = chunk[:-1], chunk[-1]
                if (
                    mark in TRAILING_PUNCTUATION
                    and core.isalpha()
                    and core not in SPECIAL_CASES
                    and (mark != "." or core[-1].islower())
                ):
                    cache[chunk] = [core, mark]
                    continue
            hard.append(chunk)
        if not hard:
            return
        joined = "\n".join(hard)
        # Each token's text is the slice of the input at its offset (no Token objects: they cost
        # more than the splitting)
        splits: list[list[str]] = [[]]
        for start, length in TOKENIZER(joined).to_array(_OFFSETS).tolist():
            text = joined[start : start + length]
            if text == "\n":
                splits.append([])
            else:
                splits[-1].append(text)
        if len(splits) != len(hard) or any("".join(w) != c for w, c in zip(splits, hard)):
            raise RuntimeError("spaCy's tokenizer did not keep newline-separated chunks apart")
        cache.update(zip(hard, splits))

    def _know(self, chunks: list[str]) -> None:
        """Make sure every one of ``chunks`` is remembered (a full cache starts over with them)."""
        distinct = dict.fromkeys(chunks)
        new = [chunk for chunk in distinct if chunk not in _CHUNKS]
        if not new:
            return
        if len(_CHUNKS) + len(new) > self.max_cache:
            _CHUNKS.clear()
            new = list(distinct)
        self._learn(new)

    def word_tokenize(self, text: str) -> list[str]:
        cache = _CHUNKS
        chunks = text.split()
        self._know(chunks)
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    def _tokens(self, text: str) -> tuple[list[str], list[int]]:
        """The texts and character offsets of spaCy's tokens of ``text``, whitespace tokens included.

        spaCy takes one space after a word as that word's trailing space; any other run of
        whitespace (or the rest of a run after that space, or a run at the very start) is a token.
        """
        cache = _CHUNKS
        self._know(text.split())
        texts: list[str] = []
        offsets: list[int] = []
        for match in _RUNS.finditer(text):
            run, start = match.group(), match.start()
            if run[0].isspace():
                if run[0] == " " and texts:
                    run, start = run[1:], start + 1
                if run:
                    texts.append(run)
                    offsets.append(start)
                continue
            for word in cache[run]:
                texts.append(word)
                offsets.append(start)
                start += len(word)
        return texts, offsets

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        """datatrove's spaCy sentence spans: spaCy's sentencizer rule over the cached splits.

        A sentence starts at the first token, and at the first token after a sentence mark (``.``,
        ``!``, ``?``, ...) that is neither a mark nor punctuation; each span runs from its first
        token's start to its last token's end. A test checks the spans against datatrove's.
        """
        from lmfoundry.data.curation.spacy_en import IS_PUNCT, SENTENCE_MARKS

        texts, offsets = self._tokens(text)
        if not texts:
            return []
        starts = [0]
        seen_mark = False
        kinds = _TOKEN_KINDS
        for i, token in enumerate(texts):
            kind = kinds.get(token)
            if kind is None:
                kind = kinds[token] = (token in SENTENCE_MARKS, IS_PUNCT(token))
            if seen_mark and not kind[0] and not kind[1]:
                starts.append(i)
                seen_mark = False
            elif kind[0]:
                seen_mark = True
        ends = [start - 1 for start in starts[1:]] + [len(texts) - 1]
        return [(offsets[a], offsets[b] + len(texts[b])) for a, b in zip(starts, ends)]

    def sent_tokenize(self, text: str) -> list[str]:
        """datatrove's spaCy sentences: the texts of :meth:`span_tokenize`, stripped, empty ones left out."""
        sentences = (text[a:b].strip() for a, b in self.span_tokenize(text))
        return [sentence for sentence in sentences if sentence]

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

