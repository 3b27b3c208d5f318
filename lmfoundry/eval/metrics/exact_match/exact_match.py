"""Exact match of final answers, optionally ignoring how a number is written (GSM8K).

With ``numeric=True`` both sides are normalized first: surrounding whitespace, thousands
separators, a currency sign, a trailing period and a zero fraction (``"1,000.00"`` == ``"$1000"``
== ``"1000."``) do not count as differences.
"""

import re

import datasets
import evaluate

_DESCRIPTION = "Fraction of predictions that equal their reference string after normalization."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): predicted answers ("" never matches).
    references (list of str): reference answers.
    numeric (bool): normalize numbers before comparing (default True).
Returns:
    exact_match (float): in [0, 1]; 0.0 when there are no examples.
"""


def normalize_number(text: str) -> str:
    text = text.strip().replace(",", "").replace("$", "").rstrip(".")
    if re.fullmatch(r"-?\d*\.\d+", text):
        text = text.rstrip("0").rstrip(".")
    return text


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, numeric=True):
        if not predictions:
            return {"exact_match": 0.0}
        norm = normalize_number if numeric else str.strip
        hits = sum(int(bool(p) and norm(p) == norm(r)) for p, r in zip(predictions, references))
        return {"exact_match": hits / len(predictions)}
