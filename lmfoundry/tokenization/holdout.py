"""The validation split: which text is held out, chosen once for the tokenizer and the shards.

The tokenizer trains on the text the shards put in ``train`` and never on the text they put in
``val``, so bits per byte is measured on text neither saw. Both ask :func:`val_split_for` with the
same inputs and settings and get the same :class:`ValSplit`, then cut every document with
:meth:`ValSplit.parts`.

Two methods:

- ``documents``: a whole document goes to val when a hash of its text falls under ``fraction``
  (:func:`~lmfoundry.tokenization.sources.is_validation`): stable as the corpus grows, duplicates
  land together. With few documents this is a lottery: one 1 MB book is either all train or all val.
- ``tail``: every document gives the last ``fraction`` of its characters to val (the cut moved back
  to a line start, else a space, at most half the tail's length away), so val always exists and
  comes from every document. Head and tail become separate pieces, each followed by EOS.

``auto`` (the default) picks ``documents`` when the corpus has at least
``MIN_EXPECTED_VAL_DOCUMENTS / fraction`` non-empty documents (then val gets about 10 documents or
more, and the chance of an empty val is below e^-10), else ``tail``. Counting stops at that
threshold, so deciding reads at most that many documents (txt/md files are counted without
reading them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmfoundry.tokenization.sources import is_validation, iter_documents

VAL_METHODS = ("auto", "documents", "tail")
MIN_EXPECTED_VAL_DOCUMENTS = 10


@dataclass(frozen=True)
class ValSplit:
    """A resolved validation split: ``method`` is ``documents`` or ``tail``; ``reason`` says why."""

    fraction: float
    method: str
    reason: str = ""

    def parts(self, text: str) -> tuple[str, str]:
        """``(train text, val text)`` of one document; either may be empty."""
        if self.method == "documents":
            return ("", text) if is_validation(text, self.fraction) else (text, "")
        cut = tail_cut(text, self.fraction)
        return text[:cut], text[cut:]

    def describe(self) -> dict[str, Any]:
        """What the manifest and the tokenizer report record about the split."""
        return {"method": self.method, "fraction": self.fraction, "reason": self.reason}


def tail_cut(text: str, fraction: float) -> int:
    """Where the val tail of ``text`` starts: at least ``ceil(fraction * len)`` characters from the
    end, moved back to just after a newline or onto a space when one is within half a tail."""
    want = math.ceil(len(text) * fraction) if fraction > 0 else 0
    if want == 0:
        return len(text)
    target = len(text) - want
    lowest = max(0, target - want // 2)
    newline = text.rfind("\n", lowest, target)
    if newline >= 0:
        return newline + 1
    space = text.rfind(" ", lowest, target)
    return space if space > 0 else target


def check_val_split(fraction: float, method: str) -> None:
    """Checked before any work: the share of text held out, and how it is chosen."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    if method not in VAL_METHODS:
        raise ValueError(f"val_method: expected one of {', '.join(VAL_METHODS)}, got {method!r}")


def val_split_for(
    fraction: float,
    method: str = "auto",
    files: list[Path] | None = None,
    text_field: str = "text",
) -> ValSplit:
    """Resolve ``method`` for a corpus given as ``files``.

    ``auto`` counts the corpus's non-empty documents up to the threshold (module docstring); a
    corpus that is not files (records, a ``datasets`` stream: ``files`` is None) gets ``documents``,
    as the shards, which are always made from files, never see it.
    """
    check_val_split(fraction, method)
    if fraction == 0:
        return ValSplit(0.0, "documents", "val_fraction is 0: no validation split")
    if method != "auto":
        return ValSplit(fraction, method, "chosen in the settings")
    needed = math.ceil(MIN_EXPECTED_VAL_DOCUMENTS / fraction)
    if files is None:
        return ValSplit(fraction, "documents", "auto: not file inputs, whole documents")
    count = count_documents(files, text_field, needed)
    if count >= needed:
        return ValSplit(fraction, "documents", f"auto: at least {needed} documents")
    documents = f"{count} document{'' if count == 1 else 's'}"
    return ValSplit(
        fraction, "tail", f"auto: {documents}, fewer than {needed} for ~{MIN_EXPECTED_VAL_DOCUMENTS} in val"
    )


def count_documents(files: list[Path], text_field: str, limit: int) -> int:
    """Non-empty documents in ``files``, counting up to ``limit`` (a non-empty txt/md file is one)."""
    count = 0
    for path in files:
        if Path(path).name.lower().endswith((".txt", ".md")):
            count += Path(path).stat().st_size > 0
        else:
            for text in iter_documents([path], text_field):
                count += bool(text)
                if count >= limit:
                    break
        if count >= limit:
            break
    return count
