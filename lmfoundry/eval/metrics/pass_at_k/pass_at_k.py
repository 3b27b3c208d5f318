"""Unbiased pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code").

For a problem with ``n`` samples of which ``c`` pass, pass@k = 1 - C(n-c, k) / C(n, k): the chance
that at least one of k samples drawn without replacement passes. Computed as a stable product.
The score is the mean over problems; k larger than a problem's n is an error.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Unbiased estimate of the probability that at least one of k samples passes."
_KWARGS_DESCRIPTION = """
Args:
    num_correct (list of int): passing samples per problem.
    num_samples (list of int): samples per problem.
    k (list of int): the k values to report (default [1]).
Returns:
    pass@k (float) for each k: the mean over problems.
"""


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PassAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Chen et al. 2021, arXiv:2107.03374",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"num_correct": datasets.Value("int64"), "num_samples": datasets.Value("int64")}
            ),
        )

    def _compute(self, num_correct, num_samples, k=(1,)):
        results = {}
        for kk in k:
            too_small = [n for n in num_samples if n < kk]
            if too_small:
                raise ValueError(f"pass@{kk} needs at least {kk} samples per problem, got {min(too_small)}")
            scores = [estimate_pass_at_k(n, c, kk) for n, c in zip(num_samples, num_correct)]
            results[f"pass@{kk}"] = float(np.mean(scores)) if scores else 0.0
        return results
