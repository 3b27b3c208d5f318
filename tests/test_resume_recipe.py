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


def test_a_changed_recipe_on_resume_is_refused_with_the_diff_then_forced(data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    first = write_recipe(tmp_path / "a.yaml", recipe_for(data, max_steps=4, checkpoint_every=2, eval_every=0))
    assert main(["train", str(first), "--output", str(out)]) == 0
    before = (out / "metrics.jsonl").read_bytes()
    changed = write_recipe(tmp_path / "b.yaml", recipe_for(data, max_steps=6, checkpoint_every=2, eval_every=0,
                                                            lr=1e-2))
    assert main(["train", str(changed), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "resuming with a recipe that changes results: train.lr: 0.003 -> 0.01" in err
    assert "--force-recipe-change" in err and str(out / "recipe.yaml") in err
    assert (out / "metrics.jsonl").read_bytes() == before  # nothing written
    # a longer run with other logging is the same run: allowed
    longer = write_recipe(tmp_path / "c.yaml", recipe_for(data, max_steps=6, checkpoint_every=3, eval_every=0))
    assert main(["train", str(longer), "--output", str(out)]) == 0
    assert sorted(train_losses(out)) == [1, 2, 3, 4, 5, 6]
    # the explicit escape
    more = write_recipe(tmp_path / "d.yaml", recipe_for(data, max_steps=7, checkpoint_every=3, eval_every=0, lr=1e-2))
    assert main(["train", str(more), "--output", str(out), "--force-recipe-change"]) == 0
    recorded = (out / "recipe.yaml").read_text()
    assert "lr: 0.01" in recorded
    assert sorted(train_losses(out)) == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("field", ["seed", "seq_len"])
def test_seed_and_batch_shape_count_as_result_changing(field):
    refused, _ = recipe_changes({"train": {field: 1}}, {"train": {field: 2}})
    assert refused == [f"train.{field}: 1 -> 2"]


def test_a_full_disk_during_training_is_one_line_and_the_earlier_checkpoint_resumes(data, tmp_path, capsys):  # noqa: F811
    from test_errors import tmpfs

    recipe = write_recipe(tmp_path / "r.yaml", recipe_for(data, max_steps=6, checkpoint_every=2, eval_every=0,
                                                          keep_last=5))
    probe = tmp_path / "probe"
    assert main(["train", str(recipe), "--output", str(probe), "--train.max_steps", "2"]) == 0
    one = sum(p.stat().st_size for p in (probe / "checkpoints" / "step-2").rglob("*") if p.is_file())
    with tmpfs(tmp_path / "small", size=f"{int(one * 1.6) // 1024 + 64}k") as small:
        code = main(["train", str(recipe), "--output", str(small / "run")])
        err = capsys.readouterr().err
        assert code == 2, err
        # a progress bar may share the line (tqdm redraws with \r): the error starts at its prefix
        line = next(line[line.index("lmfoundry: error:"):] for line in err.splitlines() if "lmfoundry: error:" in line)
        assert "no space left on device (needed about" in line and str(small / "run") in line
        assert (small / "run" / "checkpoints" / "step-2" / "COMPLETE").is_file()
        import shutil

        shutil.copytree(small / "run", tmp_path / "moved", ignore=shutil.ignore_patterns(".tmp-*", ".lock"))
    moved = write_recipe(tmp_path / "m.yaml", recipe_for(data, max_steps=6, checkpoint_every=2, eval_every=0,
                                                         keep_last=5))
    assert main(["train", str(moved), "--output", str(tmp_path / "moved"), "--resume"]) == 0
    assert sorted(train_losses(tmp_path / "moved")) == [1, 2, 3, 4, 5, 6]
