"""A resume must continue the same run: a changed model/optimizer/schedule/seed/batch field stops it with a diff;
extending the run or watching it differently is allowed; --force-recipe-change is the escape."""

from __future__ import annotations

import pytest
from test_training_run import data, recipe_for, train_losses, write_recipe  # noqa: F401

from lmfoundry.cli import main
from lmfoundry.training.recipe_check import recipe_changes


def test_only_result_changing_fields_are_refused():
    old = {"model": {"hidden_size": 32}, "train": {"lr": 1e-3, "max_steps": 10, "eval_every": 5, "max_time": None}}
    new = {"model": {"hidden_size": 64}, "train": {"lr": 2e-3, "max_steps": 20, "eval_every": 2, "max_time": None}}
    refused, allowed = recipe_changes(old, new)
    assert refused == ["model.hidden_size: 32 -> 64", "train.lr: 0.001 -> 0.002"]
    assert allowed == ["train.eval_every: 5 -> 2", "train.max_steps: 10 -> 20"]
    assert recipe_changes(old, {**old, "train": {**old["train"], "max_steps": 5}})[0] == ["train.max_steps: 10 -> 5"]
    assert recipe_changes({"train": {"max_time": "2m"}}, {"train": {"max_time": "3m"}}) == (
        [], ["train.max_time: '2m' -> '3m'"])


def test_a_longer_run_is_the_same_run_and_a_forced_change_is_recorded(data, tmp_path):  # noqa: F811
    """Extending the run and watching it differently resume it; --force-recipe-change resumes a changed lr and
    records it. (The refusal of a changed lr, with its diff, is a row of tests/test_bad_input_matrix.py.)"""
    out = tmp_path / "run"
    first = write_recipe(tmp_path / "a.yaml", recipe_for(data, max_steps=4, checkpoint_every=2, eval_every=0))
    assert main(["train", str(first), "--output", str(out)]) == 0
    longer = write_recipe(tmp_path / "c.yaml", recipe_for(data, max_steps=6, checkpoint_every=3, eval_every=0))
    assert main(["train", str(longer), "--output", str(out)]) == 0
    assert sorted(train_losses(out)) == [1, 2, 3, 4, 5, 6]
    more = write_recipe(tmp_path / "d.yaml", recipe_for(data, max_steps=7, checkpoint_every=3, eval_every=0, lr=1e-2))
    assert main(["train", str(more), "--output", str(out), "--force-recipe-change"]) == 0
    recorded = (out / "recipe.yaml").read_text()
    assert "lr: 0.01" in recorded
    assert sorted(train_losses(out)) == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("field", ["seed", "seq_len"])
def test_seed_and_batch_shape_count_as_result_changing(field):
    refused, _ = recipe_changes({"train": {field: 1}}, {"train": {field: 2}})
    assert refused == [f"train.{field}: 1 -> 2"]
