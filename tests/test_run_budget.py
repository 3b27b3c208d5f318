"""`lmfoundry quickstart` (`lmfoundry run auto` with a run.budget): the data stages first, training gets what is
left; model: auto picks the vocabulary from the curated text before the tokenizer is trained, and the train stage
uses that same plan."""

from __future__ import annotations

import json

import yaml
from tokenizers import Tokenizer

from lmfoundry.cli import main
from lmfoundry.training.budget import parse_duration


def test_the_quickstart_sizes_itself_for_its_budget_and_gives_training_the_rest(shared, tmp_path, capsys):
    run = tmp_path / "run"
    book = shared / "corpora/books/the-devils-dictionary.txt"
    assert main(["quickstart", "--output", str(run), "--data.inputs", f"[{book}]", "--budget", "60s",
                 "--data.workers", "1", "--data.tasks", "1", "--data.progress", "false", "--train.report_to", "none",
                 "--train.eval_every", "0"]) == 0
    shown = capsys.readouterr().out
    assert "held-out bits per byte: model " in shown and "vs  unigram baseline" in shown
    assert f"model:      {run / 'model'}" in shown and "--- 'And God said'" in shown
    plan = json.loads((run / "train" / "auto_plan.json").read_text())
    assert Tokenizer.from_file(str(run / "tokenizer" / "tokenizer.json")).get_vocab_size() == plan["vocab_size"]
    recorded = yaml.safe_load((run / "train" / "recipe.yaml").read_text())
    assert recorded["model"]["hidden_size"] == plan["hidden_size"]
    assert "max_steps" not in recorded["train"] or recorded["train"]["max_steps"] is None
    assert 0 < parse_duration(recorded["train"]["max_time"]) < 60 - 20  # what the data stages left, less eval's share
    steps = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "train" for r in steps)
