"""Exact match as lm-eval-harness computes it (its ``exact_match_hf_evaluate``, the Hugging Face
``exact_match`` metric): each regex in ``regexes_to_ignore`` is deleted from both sides, then
optionally case, punctuation and digits are dropped, then the strings must be equal.

No other normalisation: ``7.0`` and ``7`` differ, as they do in lm-eval's ``gsm8k``.
"""

import re
import string

import datasets
import evaluate

_DESCRIPTION = "Fraction of predictions equal to their reference after lm-eval's exact_match normalisation."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): predicted answers.
    references (list of str): reference answers.
    regexes_to_ignore (list of str): patterns removed from both sides, in order (default none).
    ignore_case (bool): lower-case both sides (default False).
    ignore_punctuation (bool): drop ``string.punctuation`` (default False).
    ignore_numbers (bool): drop digits (default False).
Returns:
    exact_match (float): in [0, 1]; 0.0 when there are no examples.
"""


def normalize(
    text: str,
    regexes_to_ignore: list[str] | tuple[str, ...] = (),
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
    ignore_numbers: bool = False,
) -> str:
    """One side of the comparison, exactly as lm-eval transforms it."""
    for pattern in regexes_to_ignore:
        text = re.sub(pattern, "", text)
    if ignore_case:
        text = text.lower()
    if ignore_punctuation:
        text = text.translate(str.maketrans("", "", string.punctuation))
    if ignore_numbers:
        text = text.translate(str.maketrans("", "", string.digits))
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

    def _compute(
        self,
        predictions,
        references,
        regexes_to_ignore=None,
        ignore_case=False,
        ignore_punctuation=False,
        ignore_numbers=False,
    ):
        if not predictions:
            return {"exact_match": 0.0}
        options = {
            "regexes_to_ignore": regexes_to_ignore or (),
            "ignore_case": ignore_case,
            "ignore_punctuation": ignore_punctuation,
            "ignore_numbers": ignore_numbers,
        }
        hits = sum(
            normalize(p, **options) == normalize(r, **options) for p, r in zip(predictions, references)
        )
        return {"exact_match": hits / len(predictions)}
