"""spaCy's blank English tokenizer, built once per process at import.

A module of its own so that the local executor's fork server can import it before forking the
workers (``preload``): each worker then starts with the tokenizer built, instead of paying spaCy's
import and rule compilation once per task. Blank English is rules only: nothing is downloaded.
"""

from __future__ import annotations

import spacy

NLP = spacy.blank("en")
TOKENIZER = NLP.tokenizer
# Whitespace-free chunks that spaCy splits by a special case ("cannot" -> "can", "not"; "gonna").
SPECIAL_CASES = frozenset(TOKENIZER.rules or ())
