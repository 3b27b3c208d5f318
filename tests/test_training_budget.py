"""Wall-clock budgets: duration parsing, the step plan, the pipeline's share for training, and the
schedule keyed to a planned run (warmup scaled to it, fully decayed at its last step)."""

from __future__ import annotations

import pytest

from lmfoundry.recipe import parse_section
from lmfoundry.training.budget import parse_duration, planned_steps, training_budget
from lmfoundry.training.config import TrainConfig
from lmfoundry.training.schedules import lr_at


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("3m", 180), ("2h", 7200), ("1h30m", 5400),
                                               ("1.5h", 5400), (" 45 ", 45), (12, 12), ("2m 30s", 150)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["3 minutes", "m", "-5", "0s", "3m20", "", True])
def test_bad_durations_name_the_field(bad):
    with pytest.raises(ValueError, match=r"train\.max_time: expected a"):
        parse_section(TrainConfig, {"train": {"shards": "s", "tokenizer": "t", "max_time": bad}}, "train")


def test_max_time_is_one_of_the_three_lengths():
    with pytest.raises(ValueError, match="exactly one of max_steps, max_tokens and max_time"):
        TrainConfig(shards="s", tokenizer="t", max_steps=10, max_time="3m")
    cfg = TrainConfig(shards="s", tokenizer="t", max_time="3m")
    assert cfg.max_time_s() == 180 and cfg.total_steps(1000) is None


def test_planned_steps_account_for_evals_checkpoints_and_the_end():
    assert planned_steps(100, 0.5) == 200
    # an eval of 2 s every 10 steps adds 0.2 s per step; a 5 s checkpoint every 50 steps 0.1 s
    assert planned_steps(100, 0.5, eval_s=2, eval_every=10, checkpoint_s=5, checkpoint_every=50) == 125
    assert planned_steps(100, 0.5, reserve_s=50) == 100
    assert planned_steps(1, 10.0) == 1  # never zero steps
    with pytest.raises(ValueError):
        planned_steps(100, 0.0)


def test_training_gets_what_the_pipeline_budget_leaves():
    assert training_budget("3m", spent_s=40, after_training_s=20) == 120
    with pytest.raises(ValueError, match=r"run budget 3m: the stages before training took 175 s"):
        training_budget("3m", spent_s=175)


def test_warmup_scales_with_the_planned_run_and_the_schedule_ends_decayed():
    cfg = TrainConfig(shards="s", tokenizer="t", max_time="1m", warmup_fraction=0.1, schedule="wsd",
                      min_lr_ratio=0.0)
    for total in (40, 400):
        warmup = cfg.warmup_for(total)
        assert warmup == total // 10
        lrs = [lr_at(s, lr=1.0, total_steps=total, schedule="wsd", warmup_steps=warmup, min_lr_ratio=0.0,
                     decay_fraction=0.2) for s in range(total)]
        assert lrs[warmup - 1] == 1.0 and lrs[-1] == 0.0
    assert TrainConfig(shards="s", tokenizer="t", max_steps=10, warmup_steps=3).warmup_for(1000) == 3
