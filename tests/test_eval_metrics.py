"""Metrics (shipped `evaluate` modules loaded by path, offline), answer extraction and prompt formats."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfoundry.eval.metrics import load_metric
from lmfoundry.eval.tasks.bpb import rolling_windows
from lmfoundry.eval.tasks.gsm8k import GSM8K
from lmfoundry.eval.tasks.mmlu import build_prompt as mmlu_prompt


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (c of them passing) that contain a passing one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_metrics_load_from_the_package_without_the_hub():
    assert load_metric("accuracy").compute(predictions=[0, 1, 2, 3], references=[0, 1, 0, 0]) == {
        "accuracy": 0.5
    }
    with pytest.raises(ValueError, match="unknown metric"):
        load_metric("bleu")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_the_unbiased_estimator(case):
    n, c, k = case
    got = load_metric("pass_at_k").compute(num_correct=[c], num_samples=[n], k=[k])[f"pass@{k}"]
    assert got == pytest.approx(brute_force_pass_at_k(n, c, k))


def test_pass_at_k_averages_problems_and_rejects_k_above_n():
    metric = load_metric("pass_at_k")
    scores = metric.compute(num_correct=[0, 2, 5], num_samples=[5, 5, 5], k=[1, 5])
    assert scores == pytest.approx({"pass@1": (0 + 0.4 + 1) / 3, "pass@5": 2 / 3})
    with pytest.raises(ValueError, match="pass@10 needs at least 10 samples"):
        metric.compute(num_correct=[1], num_samples=[5], k=[10])


@pytest.mark.parametrize(
    ("prediction", "reference", "match"),
    [
        ("1,000", "1000", True),  # gsm8k's ignore regexes: ',' '$' '(?s).*#### ' and a final '.'
        ("$18", "18", True),
        ("18.", "18", True),
        ("18", "Work: 9 + 9 = 18\n#### 18", True),
        ("18.0", "18", False),  # no number normalisation, as lm-eval
        ("2.50", "2.5", False),
        ("-3", "-3", True),
        ("18", "180", False),
        ("[invalid]", "0", False),
    ],
)
def test_exact_match_is_lm_eval_s(prediction, reference, match):
    from lm_eval.api.metrics import exact_match_hf_evaluate

    options = {"regexes_to_ignore": [",", "\\$", "(?s).*#### ", "\\.$"], "ignore_case": True}
    score = load_metric("exact_match").compute(predictions=[prediction], references=[reference], **options)
    assert score["exact_match"] == float(match)
    assert exact_match_hf_evaluate([prediction], [reference], **options)["exact_match"] == float(match)


def test_bits_per_byte_from_summed_losses():
    metric = load_metric("bits_per_byte")
    scores = metric.compute(loss_nats=[3.0, 1.0], num_tokens=[2, 2], num_bytes=[5, 3], num_words=[1, 1])
    assert scores["loss"] == pytest.approx(1.0)
    assert scores["perplexity"] == pytest.approx(math.e)
    assert scores["bits_per_byte"] == pytest.approx(4.0 / math.log(2) / 8)
    # lm-eval's wikitext aggregations over (loglikelihood, count) pairs
    from lm_eval.api.metrics import bits_per_byte, weighted_perplexity

    assert scores["bits_per_byte"] == pytest.approx(bits_per_byte([(-3.0, 5), (-1.0, 3)]))
    assert scores["byte_perplexity"] == pytest.approx(weighted_perplexity([(-3.0, 5), (-1.0, 3)]))
    assert scores["word_perplexity"] == pytest.approx(weighted_perplexity([(-3.0, 1), (-1.0, 1)]))
    with pytest.raises(ValueError, match="at least one scored token"):
        metric.compute(loss_nats=[0.0], num_tokens=[0], num_bytes=[0], num_words=[0])


def test_gsm8k_prompt_is_question_answer_pairs():
    shots = [("1+1?", "1+1=2\n#### 2")]
    assert GSM8K.prompt(shots, "2+2?") == "Question: 1+1?\nAnswer: 1+1=2\n#### 2\n\nQuestion: 2+2?\nAnswer:"


def test_mmlu_prompt_is_lm_eval_harness_format():
    shot = {"question": " Capital of France? ", "choices": ["Paris", "Rome", "Oslo", "Bern"], "answer": 0}
    doc = {"question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": 1}
    assert mmlu_prompt("high_school_geography", [shot], doc) == (
        "The following are multiple choice questions (with answers) about high school geography.\n\n"
        "Capital of France?\nA. Paris\nB. Rome\nC. Oslo\nD. Bern\nAnswer: A\n\n"
        "2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    )


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 60), st.integers(1, 12))
def test_rolling_windows_are_lm_eval_s_and_score_every_token_once(n, max_seq_len):
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    tokens = list(range(100, 100 + n))
    ours = list(rolling_windows(tokens, -1, max_seq_len))
    theirs = [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, -1, max_seq_len, 1)]
    assert ours == theirs
    scored = [t for _, continuation in ours for t in continuation]
    assert scored == tokens
    assert all(len((c + x)[:-1]) <= max_seq_len for c, x in ours)
