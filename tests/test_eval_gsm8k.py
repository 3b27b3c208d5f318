"""GSM8K on the real records (../shared/benchmarks/gsm8k): lm-eval's prompts, shots, stops, filters
and exact_match, checked against stock lm-eval's own task objects on the same local files, and
hand-checked extraction cases."""

from __future__ import annotations

import json

import pytest

from lmfoundry.eval.config import EvalConfig
from lmfoundry.eval.tasks.gsm8k import (
    GSM8K,
    GSM8K_COT,
    GSM8KTask,
    flexible_extract,
    is_correct,
    strict_match,
)


@pytest.fixture(scope="module")
def data_dir(shared, tmp_path_factory):
    """The local layout (gsm8k/train.jsonl, gsm8k/test.jsonl) as links to the real files."""
    root = tmp_path_factory.mktemp("gsm8k")
    (root / "gsm8k").mkdir()
    (root / "gsm8k" / "train.jsonl").symlink_to(shared / "benchmarks" / "gsm8k" / "train_first200.jsonl")
    (root / "gsm8k" / "test.jsonl").symlink_to(shared / "benchmarks" / "gsm8k" / "test.jsonl")
    return root


@pytest.mark.parametrize(
    ("completion", "strict", "flexible", "reference", "strict_ok", "flexible_ok"),
    [
        # thousands separator: both sides lose their commas
        (" 500 + 500 = 1,000 dollars.\n#### 1,000", "1,000", "1,000", "#### 1000", True, True),
        # a currency sign goes, a zero fraction stays: 5.00 is not 5 (no number normalisation)
        (" It costs $5.00.", "[invalid]", "$5.00.", "#### 5", False, False),
        (" It costs $5.00.", "[invalid]", "$5.00.", "#### 5.00", False, True),
        # a negative answer
        (" 2 - 5 = -3\n#### -3", "-3", "-3", "#### -3", True, True),
        # a trailing sentence after the answer: strict reads after '#### ', flexible takes the last number
        (" 9 + 9 = 18\n#### 18 apples. She has 2 bags.", "18", "2", "#### 18", True, False),
        (" So she has 18 apples. That is all.", "[invalid]", "18", "#### 18", False, True),
        # '7.0' is not '7', as in lm-eval
        (" #### 7.0", "7.0", "7.0", "#### 7", False, False),
    ],
)
def test_hand_checked_extraction(completion, strict, flexible, reference, strict_ok, flexible_ok):
    assert strict_match(completion) == strict
    assert flexible_extract(completion) == flexible
    assert is_correct(strict, reference) is strict_ok
    assert is_correct(flexible, reference) is flexible_ok


def test_the_reference_solutions_of_all_1319_test_problems_score_1(data_dir):
    task = GSM8KTask(EvalConfig(data_dir=data_dir, num_fewshot=0))
    assert len(task.test) == 1319
    result = task.score([" " + d["answer"] for d in task.test])
    assert result.metrics["exact_match,strict-match"] == 1.0
    assert result.metrics["exact_match,flexible-extract"] == 1.0
    wrong = task.score([" " + d["answer"].replace("#### ", "#### 1") for d in task.test])
    assert wrong.metrics["exact_match,strict-match"] == 0.0
    cot = GSM8KTask(EvalConfig(data_dir=data_dir, limit=50), GSM8K_COT)
    finals = [d["answer"].split("####")[-1].strip() for d in cot.test]
    assert (
        cot.score([f" Working. The answer is {f}." for f in finals]).metrics["exact_match,strict-match"]
        == 1.0
    )


def stock_instances(task_name, data_dir, tmp_path, limit):
    """lm-eval's own requests for ``task_name`` on the same local files (its fewshot seed 1234)."""
    from lm_eval.tasks import TaskManager, get_task_dict

    from lmfoundry.eval.lm_eval_tasks import write_stock_task

    files = {"train": data_dir / "gsm8k" / "train.jsonl", "test": data_dir / "gsm8k" / "test.jsonl"}
    write_stock_task(task_name, files, tmp_path / "tasks")
    manager = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
    task = get_task_dict([task_name], manager)[task_name]
    task.set_fewshot_seed(seed=1234)
    task.build_all_requests(limit=limit)
    return sorted(task.instances, key=lambda inst: inst.doc_id)


@pytest.mark.parametrize("variant", [GSM8K, GSM8K_COT])
def test_prompts_shots_and_stops_are_stock_lm_eval(variant, data_dir, tmp_path):
    ours = GSM8KTask(EvalConfig(data_dir=data_dir, limit=12), variant)
    theirs = stock_instances(variant.name, data_dir, tmp_path, limit=12)
    assert [i.args[0] for i in theirs] == ours.prompts()
    assert ours.num_fewshot == (5 if variant is GSM8K else 8)
    for inst in theirs:
        assert tuple(inst.args[1]["until"]) == variant.stop and inst.args[1]["do_sample"] is False
    assert [inst.doc["answer"] for inst in theirs] == [d["answer"] for d in ours.test]
    if variant is GSM8K:  # every question drew its own shots
        assert len({p.split("Question: ")[1] for p in ours.prompts()}) > 1


def test_filters_and_metric_agree_with_stock_lm_eval(data_dir, tmp_path):
    """lm-eval's own filter and metric code on the same completions gives our per-item scores."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    ours = GSM8KTask(EvalConfig(data_dir=data_dir, limit=40))
    completions = [
        " " + d["answer"] if i % 4 == 0 else f" I think {i},5 or ${i}.0 maybe.\n#### {i}{',' * (i % 2)}"
        for i, d in enumerate(ours.test)
    ]
    result = ours.score(completions)
    for name, regex, group in (
        ("strict-match", GSM8K.strict, 0),
        ("flexible-extract", r"(-?[$0-9.,]{2,})|(-?[0-9]+)", -1),
    ):
        filtered = [r[0] for r in RegexFilter(regex, group).apply([[c] for c in completions], ours.test)]
        assert filtered == [s[name]["prediction"] for s in result.details["samples"]]
        per_item = [
            exact_match_hf_evaluate(
                [f], [r], regexes_to_ignore=[",", "\\$", "(?s).*#### ", "\\.$"], ignore_case=True
            )["exact_match"]
            for f, r in zip(filtered, ours.references)
        ]
        assert per_item == [float(s[name]["correct"]) for s in result.details["samples"]]
        assert result.metrics[f"exact_match,{name}"] == pytest.approx(sum(per_item) / len(per_item))
    json.dumps(result.details)  # results.json must hold them
