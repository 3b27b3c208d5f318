"""spaCy's blank English tokenizer, built once per process at import.

A module of its own so that the local executor's fork server can import it before forking the
workers (``preload``): each worker then starts with the tokenizer built, instead of paying spaCy's
import and rule compilation once per task. Blank English is rules only: nothing is downloaded.
"""

from __future__ import annotations

import sys


def _import_spacy_without_torch():
    """``import spacy``, without the torch import its machine-learning layer (thinc) tries on the way.

    thinc imports torch when it is installed, for neural models; a tokenizer made of rules never
    uses it, and in a process that has not loaded torch yet (the fork server, its workers) it was
    over half of spaCy's import time. While spaCy loads, ``import torch`` fails as if torch were
    not installed, which thinc handles by leaving its torch support off; ``torch`` itself stays
    importable afterwards. Where torch is already loaded, this is a plain ``import spacy``.
    """
    if "torch" in sys.modules:
        import spacy

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes "import torch" raise ImportError
    try:
        import spacy
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return spacy


spacy = _import_spacy_without_torch()
from spacy.attrs import IS_PUNCT as IS_PUNCT_ATTR  # noqa: E402  (spaCy is loaded above)
from spacy.pipeline.sentencizer import Sentencizer  # noqa: E402

NLP = spacy.blank("en")
# spaCy's sentencizer (datatrove adds it with its defaults) reads two things of each token: whether
# its text is one of these marks, and its ``is_punct`` lexical attribute.
SENTENCE_MARKS = frozenset(Sentencizer.default_punct_chars)
IS_PUNCT = NLP.vocab.lex_attr_getters[IS_PUNCT_ATTR]
# The tokenizer splits by its rules alone; the lexical attributes spaCy computes for every new word
# (shape, like_num, stop word, ...) are never read here, and were half the cost of a new word.
NLP.vocab.lex_attr_getters = {}
TOKENIZER = NLP.tokenizer
# Whitespace-free chunks that spaCy splits by a special case ("cannot" -> "can", "not"; "gonna").
SPECIAL_CASES = frozenset(TOKENIZER.rules or ())


def _trailing_punctuation() -> frozenset[str]:
    """Marks that spaCy cuts off the end of a word of ASCII letters as one token: ``word,`` -> ``word ,``.

    For a chunk ``core + mark`` that is no special case, with ``core`` ASCII letters and no special
    case either: no prefix rule starts with a letter, the suffix rule takes the one mark, and what
    is left is split as ``core`` alone would be. The special-case matcher could only differ
    through a rule that is the mark itself, so marks that are rules are left out. A period is cut
    off only after a lowercase letter (``word.``; ``A.`` and ``aB.`` stay whole), so the caller
    takes it only there. Each mark is checked here on sample words; one that fails is left out.
    """
    marks = []
    for mark in ",;:!?.":
        if mark in SPECIAL_CASES:
            continue
        probes = [core for core in ("ab", "Ab", "word", "Word", "xyz") if core + mark not in SPECIAL_CASES]
        if mark != ".":
            probes += [core for core in ("A", "AB", "aB", "WORD") if core + mark not in SPECIAL_CASES]
        if all([t.text for t in TOKENIZER(core + mark)] == [core, mark] for core in probes):
            marks.append(mark)
    return frozenset(marks)


TRAILING_PUNCTUATION = _trailing_punctuation()
