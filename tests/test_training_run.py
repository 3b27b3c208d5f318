"""End-to-end training on real shards: the real FoundryForCausalLM, a tokenizer from train_tokenizer,
shards from tokenize_shards. Covers the run folder, exact resume after SIGKILL (also mid-checkpoint),
two processes vs gradient accumulation, spike rollback by fault injection, and bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from train_helpers import train_recipe
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmfoundry.cli import main as cli_main
from lmfoundry.data.default_corpus import bible_jsonl_path
from lmfoundry.data.shards import TokenizeConfig, tokenize_shards
from lmfoundry.hub import write_model_card
from lmfoundry.modeling import FoundryConfig
from lmfoundry.recipe import load_recipe
from lmfoundry.tokenization import train_tokenizer
from lmfoundry.training import TrainConfig, TrainingDivergedError, train

MODEL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "max_position_embeddings": 64}
STEPS = 24


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """A tokenizer and token shards built once from ~4,000 KJV verses (real text, real pipeline)."""
    root = tmp_path_factory.mktemp("training-data")
    verses = [json.loads(line)["text"] for line in bible_jsonl_path().read_text().splitlines()[:4000]]
    corpus = root / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": " ".join(verses[i:i + 8])}) + "\n"
                              for i in range(0, len(verses), 8)), encoding="utf-8")
    train_tokenizer([corpus], 512, root / "tokenizer", show_progress=False)
    config = TokenizeConfig(val_fraction=0.1, workers=1)
    tokenize_shards(config, [corpus], root / "tokenizer", root / "shards", show_progress=False)
    return {"root": root, "tokenizer": root / "tokenizer", "shards": root / "shards"}


def recipe_for(data: dict, **train_fields) -> dict:
    train_section = {
        "shards": str(data["shards"]), "tokenizer": str(data["tokenizer"]), "seq_len": 32,
        "micro_batch_size": 4, "global_batch_size": 8, "max_steps": STEPS, "lr": 3e-3, "warmup_steps": 4,
        "checkpoint_every": 8, "keep_last": 2, "eval_every": 8, "eval_batches": 4, "report_to": "none",
        "sample_prompts": ["In the beginning"], "sample_max_new_tokens": 8, "seed": 3,
        "spike_window": 8, "spike_min_history": 6, "spike_grad_zscore": 0, "spike_rollback_steps": 2,
        "spike_skip_extra": 1,
    }
    train_section.update(train_fields)
    return {"model": dict(MODEL), "train": train_section}


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def train_losses(run_dir: Path) -> dict[int, float]:
    """Loss per step as the run kept it (the last record of a step wins)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if r["kind"] == "train"}


def run_cli(args: list[str], env_extra: dict | None = None, module: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    command = module or [sys.executable, "-m", "lmfoundry.cli"]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> tuple[Path, dict]:
    """One uninterrupted run that several tests compare against."""
    out = tmp_path_factory.mktemp("reference") / "run"
    summary = train_recipe(recipe_for(data, report_to="tensorboard"), out)
    return out, summary


def test_run_folder_has_model_metrics_plot_and_recipe(reference, data):
    out, summary = reference
    assert summary["steps"] == STEPS and summary["tokens"] == STEPS * 8 * 32 and summary["rollbacks"] == 0
    losses = train_losses(out)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert losses[STEPS] < losses[1] - 0.5  # it learns
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in val] == [8, 16, 24]
    bytes_per_token = json.loads((data["shards"] / "manifest.json").read_text())["splits"]["val"]["bytes_per_token"]
    assert val[-1]["val_bpb"] == pytest.approx(val[-1]["val_loss"] / math.log(2) / bytes_per_token, rel=1e-9)
    assert summary["val_loss"] == val[-1]["val_loss"]
    samples = [r for r in records if r["kind"] == "samples"]
    assert samples and samples[-1]["samples"][0]["prompt"] == "In the beginning"
    # one "run" record, first: what the session ran on (nothing naming the machine or the user)
    (session,) = [r for r in records if r["kind"] == "run"]
    assert records[0] is session and session["step"] == 0 and not session["resumed"]
    assert set(session) == {"kind", "step", "resumed", "device_type", "device_name", "num_processes",
                            "distributed_type", "mixed_precision", "versions"}
    assert session["device_type"] == "cpu" and session["device_name"] and session["num_processes"] == 1
    assert session["mixed_precision"] == "no" and session["distributed_type"] == "NO"
    assert set(session["versions"]) == {"python", "torch", "transformers", "accelerate", "lmfoundry"}
    # wall clock on every train record: this session's, and the run's (the same clock in a fresh run)
    steps = [r for r in records if r["kind"] == "train"]
    elapsed = [r["elapsed_s"] for r in steps]
    assert elapsed[0] > 0 and elapsed == sorted(elapsed) and len(set(elapsed)) == len(elapsed)
    assert all(0 <= r["train_time_s"] - r["elapsed_s"] < 5 for r in steps)
    # the model card reads them, and shows no local path of the recipe (the shards lie outside the run)
    card = write_model_card(out / "model").read_text()
    assert f"| Hardware | {session['device_name']} (cpu) |" in card and "| Processes | 1 |" in card
    assert "| Training time (wall clock) | " in card and "| Training time (wall clock) | not recorded" not in card
    assert str(data["root"]) not in card and "shards: <local>/shards" in card
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert list((out / "logs").rglob("events.out.tfevents*")), "TensorBoard tracker wrote nothing"
    saved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert saved["model"]["vocab_size"] == len(AutoTokenizer.from_pretrained(data["tokenizer"]))
    assert saved["train"]["max_steps"] == STEPS
    # checkpoints: the last two plus the final one; each complete
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["step-16", "step-24", "step-8"] or names == ["step-16", "step-24"]
    assert all((out / "checkpoints" / n / "COMPLETE").is_file() for n in names)
    # the exported model loads with the Auto classes and reproduces the training loss computation
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    ids = tokenizer("In the beginning God created", return_tensors="pt").input_ids
    generated = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 5


def test_sigkill_mid_run_and_mid_checkpoint_then_resume_is_bitwise_exact(reference, data, tmp_path):
    ref_dir, _ = reference
    recipe = write_recipe(tmp_path / "recipe.yaml", recipe_for(data))
    out = tmp_path / "run"
    # 1) killed halfway through writing the step-16 checkpoint: state written, marker and rename not
    first = run_cli(["train", str(recipe), "--output", str(out)], {"LMFOUNDRY_FAULT_SIGKILL": "checkpoint:16"})
    assert first.returncode == -9, first.stderr[-2000:]
    assert (out / "checkpoints" / ".tmp-step-16").is_dir() and not (out / "checkpoints" / "step-16").exists()
    # 2) resumes from step 8 (never from the interrupted write), killed again as step 20 begins
    second = run_cli(["train", str(recipe), "--output", str(out), "--resume"], {"LMFOUNDRY_FAULT_SIGKILL": "step:20"})
    assert second.returncode == -9, second.stderr[-2000:]
    assert "removing incomplete checkpoint" in second.stderr and "resumed from" in second.stderr
    assert "step-8 (step 8," in second.stderr
    # 3) resumes (here in-process) from step 16, written by the second process, and finishes
    summary = train_recipe(recipe_for(data), out)
    assert summary["steps"] == STEPS and (out / "checkpoints" / "step-24").is_dir()
    ours, expected = train_losses(out), train_losses(ref_dir)
    assert sorted(ours) == list(range(1, STEPS + 1))
    assert ours == expected  # bitwise: floats from JSON compare exactly
    assert (out / "model" / "model.safetensors").is_file()
    # one "run" record per session; training time continues from the checkpoint, elapsed_s restarts
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["resumed"]) for r in records if r["kind"] == "run"] == [(0, False), (8, True), (16, True)]
    kept = {r["step"]: r for r in records if r["kind"] == "train"}
    assert [kept[step]["train_time_s"] for step in sorted(kept)] == sorted(r["train_time_s"] for r in kept.values())
    # the first step of each resumed session carries the earlier sessions' time on top of its own
    assert kept[9]["train_time_s"] > kept[9]["elapsed_s"] and kept[17]["train_time_s"] > kept[17]["elapsed_s"]


def test_two_processes_match_one_process_with_grad_accumulation(reference, data, tmp_path):
    ref_dir, _ = reference
    recipe = write_recipe(tmp_path / "recipe.yaml", recipe_for(data))
    out = tmp_path / "ddp"
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lmfoundry", "train"]
    result = run_cli([str(recipe), "--output", str(out)], {"ACCELERATE_USE_CPU": "1"}, module=launch)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes x 1 micro-batches x 4 sequences" in result.stderr  # two real ranks
    assert result.stdout.count("trained 24 steps") == 1  # one summary line, not one per rank
    ours, expected = train_losses(out), train_losses(ref_dir)
    assert sorted(ours) == sorted(expected)
    assert max(abs(ours[s] - expected[s]) for s in ours) < 1e-5


def test_poisoned_batches_cause_a_spike_rollback_skip_and_recovery(reference, data, tmp_path):
    ref_dir, ref_summary = reference
    out = tmp_path / "poisoned"
    summary = train_recipe(recipe_for(data, poison_batches="17-21", spike_lr_factor=0.5, spike_lr_steps=3), out)
    events = [json.loads(line) for line in (out / "spikes.jsonl").read_text().splitlines()]
    assert len(events) == 2 and summary["rollbacks"] == 2
    event, second = events
    # step 18 (data step 17) got a destructive update; step 19 (data step 18) shows the spike.
    # step-16 was judged clean after step 18 (rollback margin 2 steps) and is restored
    assert event["step"] == 19 and event["data_step"] == 18 and event["reason"] == "loss z-score"
    assert event["checkpoint_restored"].endswith("step-16") and event["restored_step"] == 16
    # data steps 16..18 were seen from the checkpoint through the spike, + 1 extra: 16..19 skipped
    assert event["skipped_data_steps"] == [16, 19] and event["batches_skipped"] == 4
    # step 17 then trains on data step 20 (also poisoned): step 18 (data step 21) spikes, step-16 is
    # restored again, and reading resumes past everything either branch saw: data steps 16..22
    assert second["step"] == 18 and second["data_step"] == 21 and second["restored_step"] == 16
    assert second["skipped_data_steps"] == [16, 22] and second["batches_skipped"] == 7
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    kept = {r["step"]: r for r in records if r["kind"] == "train"}
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, STEPS + 1))  # one history
    assert [(r["spike_step"], r["step"]) for r in records if r["kind"] == "rollback"] == [(19, 16), (18, 16)]
    assert all(r["data_step"] not in range(16, 23) for r in kept.values())
    # the training-time clock is not rolled back with the checkpoint: the discarded work took time too
    times = [r["train_time_s"] for r in records if r["kind"] == "train"]
    assert times == sorted(times)
    assert kept[17]["data_step"] == 23  # the step after the checkpoint reads past the skipped batches
    # the lr is halved for the 3 steps after the (last) rollback, then back on schedule
    ref_lr = {r["step"]: r["lr"] for r in map(json.loads, (ref_dir / "metrics.jsonl").read_text().splitlines())
              if r["kind"] == "train"}
    assert [kept[s]["lr"] / ref_lr[s] for s in (16, 17, 18, 19, 20)] == pytest.approx([1, 0.5, 0.5, 0.5, 1])
    assert abs(summary["val_loss"] - ref_summary["val_loss"]) < 0.05
    # no checkpoint lost: every step-N is complete and the rollback target survived
    ckpts = out / "checkpoints"
    assert all((p / "COMPLETE").is_file() for p in ckpts.glob("step-*"))
    assert {p.name for p in ckpts.glob("step-*")} == {"step-16", "step-24"}
    assert (out / "loss_curve.png").stat().st_size > 10_000
    assert "loss spike at step 19 (data step 18)" in (out / "train.log").read_text()
    assert (out / "model" / "model.safetensors").is_file()


def test_spike_at_step_20_without_checkpoints_rolls_back_to_memory_and_finishes(data, tmp_path):
    """The issue's failure: a 120-step run with checkpoint_every 0 blew up at step 20 and the rollback
    "restored nothing". Now an in-memory snapshot is restored, the lr is lowered, the run finishes."""
    short = dict(seq_len=16, micro_batch_size=4, global_batch_size=4, max_steps=120, warmup_steps=None,
                 checkpoint_every=0, eval_every=0, sample_prompts=[], spike_rollback_steps=None,
                 spike_skip_extra=None, spike_lr_steps=None)
    clean = train_recipe(recipe_for(data, **short), tmp_path / "clean")
    summary = train_recipe(recipe_for(data, **short, poison_batches="19-19"), tmp_path / "poisoned")
    assert summary["steps"] == 120 and summary["rollbacks"] == 1
    records = [json.loads(line) for line in (tmp_path / "poisoned" / "metrics.jsonl").read_text().splitlines()]
    (rollback,) = [r for r in records if r["kind"] == "rollback"]
    # step 20 took the destructive update, step 21 showed it; snapshots every 3 steps, clean 1 step after
    assert rollback["spike_step"] == 21 and rollback["data_step"] == 20
    assert rollback["checkpoint_restored"] == "memory snapshot of step 18" and rollback["step"] == 18
    assert rollback["skipped_data_steps"] == [18, 21] and rollback["lr_factor"] == 0.5 and rollback["lr_steps"] == 6
    # one consistent history: every step once, none of it read from the skipped batches
    train_rows = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(1, 121))
    assert not {r["data_step"] for r in train_rows} & set(range(18, 22))
    lr_ratio = {r["step"]: r["lr"] for r in train_rows}
    clean_lr = {r["step"]: r["lr"] for r in map(json.loads, (tmp_path / "clean" / "metrics.jsonl").read_text()
                                                  .splitlines()) if r["kind"] == "train"}
    assert [lr_ratio[s] / clean_lr[s] for s in range(18, 27)] == pytest.approx([1] + [0.5] * 6 + [1, 1])
    assert not (tmp_path / "poisoned" / "checkpoints" / "step-18").exists()  # memory, not disk
    assert summary["val_loss"] == pytest.approx(clean["val_loss"], abs=0.1)


def test_too_many_rollbacks_stop_with_a_clear_error_and_checkpoints_intact(data, tmp_path):
    out = tmp_path / "diverged"
    with pytest.raises(TrainingDivergedError, match=r"loss spike at step 14 .* after 0 rollbacks"):
        train_recipe(recipe_for(data, poison_batches="12-12", spike_max_rollbacks=0), out)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-8"]
    assert (out / "checkpoints" / "step-8" / "COMPLETE").is_file()



def test_cli_exits_3_with_one_clear_line_when_training_diverges(data, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "recipe.yaml", recipe_for(data, poison_batches="12-12", spike_max_rollbacks=0))
    assert cli_main(["train", str(recipe), "--output", str(tmp_path / "diverged")]) == 3
    err = capsys.readouterr().err
    assert "lmfoundry: training stopped: loss spike at step 14" in err
    assert "Traceback" not in err


def test_cli_trains_with_overrides_and_reports_bad_input(data, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "recipe.yaml", recipe_for(data))
    out = tmp_path / "cli-run"
    assert cli_main(["train", str(recipe), "--output", str(out), "--train.max_steps", "3",
                     "--train.eval_every", "0", "--train.checkpoint_every", "0"]) == 0
    assert "trained 3 steps" in capsys.readouterr().out
    assert sorted(train_losses(out)) == [1, 2, 3]
    assert cli_main(["train", str(recipe), "--output", str(tmp_path / "x"), "--train.lr_typo", "1"]) == 2
    assert "unknown field(s) lr_typo" in capsys.readouterr().err
    # without shards/tokenizer/--output: the `lmfoundry run` layout under run.output
    bare = recipe_for(data, max_steps=2, checkpoint_every=0, eval_every=0)
    del bare["train"]["shards"], bare["train"]["tokenizer"]
    bare["run"] = {"output": str(data["root"])}
    assert cli_main(["train", str(write_recipe(tmp_path / "bare.yaml", bare))]) == 0
    assert sorted(train_losses(data["root"] / "train")) == [1, 2]


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"train": {"seq_len": 128}}, ValueError, r"train.seq_len=128 exceeds model.max_position_embeddings=64"),
        ({"train": {"global_batch_size": 6}}, ValueError,
         r"global_batch_size=6 is not divisible by processes \(1\) x micro_batch_size \(4\)"),
        ({"train": {"warmup": 3}}, ValueError, r"recipe section 'train': unknown field\(s\) warmup"),
        ({"model": {"hidden_layers": 3}}, ValueError, r"recipe section 'model': unknown field\(s\) hidden_layers"),
        ({"model": {"vocab_size": 100}}, ValueError, r"model.vocab_size=100 is smaller than the tokenizer"),
        ({"train": {"shards": "/nonexistent/shards"}}, FileNotFoundError, r"train.shards: folder /nonexistent"),
    ],
)
def test_bad_recipe_values_fail_before_training(data, tmp_path, change, error, message):
    recipe = recipe_for(data)
    for section, fields in change.items():
        recipe[section].update(fields)
    with pytest.raises(error, match=message):
        train_recipe(recipe, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_shards_from_another_tokenizer_are_refused(data, tmp_path):
    other = train_tokenizer([data["root"] / "docs.jsonl"], 576, tmp_path / "other-tokenizer", show_progress=False)
    assert len(other) != len(AutoTokenizer.from_pretrained(data["tokenizer"]))
    with pytest.raises(ValueError, match="shards were made with tokenizer"):
        train_recipe(recipe_for(data, tokenizer=str(tmp_path / "other-tokenizer")), tmp_path / "run")


def test_resume_needs_an_existing_run_and_output_must_be_writable(data, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--resume: run folder .* does not exist"):
        train_recipe(recipe_for(data), tmp_path / "missing", resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        train_recipe(recipe_for(data), tmp_path / "empty", resume=True)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="a-file/run"):  # read-only folders: test_bad_input_matrix.py
        train_recipe(recipe_for(data), blocker / "run")


def test_overrides_wsd_and_activation_checkpointing_give_the_same_losses(reference, data, tmp_path):
    recipe_path = write_recipe(tmp_path / "recipe.yaml", recipe_for(data))
    overrides = ["--train.max_steps", "3", "--train.checkpoint_every", "0", "--train.eval_every", "0"]
    plain = train_recipe(load_recipe(recipe_path, overrides), tmp_path / "plain")
    recomputed = train_recipe(load_recipe(recipe_path, [*overrides, "--train.gradient_checkpointing", "true"]),
                              tmp_path / "recomputed")
    assert plain["steps"] == recomputed["steps"] == 3
    # recomputing activations in the backward pass changes memory, not the arithmetic
    assert train_losses(tmp_path / "plain") == pytest.approx(train_losses(tmp_path / "recomputed"), abs=1e-6)
    # the Python entry point takes the dataclasses themselves: the same run, bit for bit
    config = TrainConfig(**{**recipe_for(data)["train"], "max_steps": 3, "checkpoint_every": 0, "eval_every": 0})
    assert train(config, tmp_path / "api", FoundryConfig(**MODEL))["steps"] == 3
    assert train_losses(tmp_path / "api") == train_losses(tmp_path / "plain")
    wsd = train_recipe(load_recipe(recipe_path, [*overrides, "--train.schedule", "wsd"]), tmp_path / "wsd")
    assert wsd["steps"] == 3
    assert yaml.safe_load((tmp_path / "wsd" / "recipe.yaml").read_text())["train"]["schedule"] == "wsd"


def test_max_time_plans_steps_and_ends_fully_decayed(data, tmp_path):
    fields = dict(max_steps=None, max_time="3s", warmup_steps=None, warmup_fraction=0.1, schedule="wsd",
                  min_lr_ratio=0.0, checkpoint_every=0, eval_every=0, sample_prompts=[], seq_len=16,
                  micro_batch_size=4, global_batch_size=4)
    out = tmp_path / "timed"
    summary = train_recipe(recipe_for(data, **fields), out)
    assert summary["max_time_s"] == 3.0 and summary["steps"] >= 2  # few when other jobs load the machine
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in records if r["kind"] == "train"]
    # the probe steps left no trace: the history starts at step 1 and the plan was run to its end
    assert [r["step"] for r in rows] == list(range(1, summary["steps"] + 1))
    assert rows[-1]["lr"] == 0.0 and max(r["lr"] for r in rows) == pytest.approx(3e-3)  # decayed at the deadline
    # the probe's steps, validation and state save count against the budget: the first step's training
    # clock holds them (elapsed_s counts the whole session so far, probe included)
    assert rows[0]["train_time_s"] > 0.9 * rows[0]["elapsed_s"]
    log = (out / "train.log").read_text()
    assert "max_time 3s: a step takes" in log and "probe steps" in log


def test_max_time_replans_when_the_machine_slows_down_after_the_probe(data, tmp_path, monkeypatch):
    """Steps many times slower than the probe's (another job took the cores): the plan is checked by the clock,
    not only every 5% of its (far too many) steps, so the run still ends decayed near its deadline."""
    monkeypatch.setenv("LMFOUNDRY_FAULT_SLOW_STEP", "0.3")
    fields = dict(max_steps=None, max_time="4s", warmup_steps=None, schedule="wsd", min_lr_ratio=0.0,
                  checkpoint_every=0, eval_every=0, sample_prompts=[], seq_len=16, micro_batch_size=4,
                  global_batch_size=4)
    out = tmp_path / "slowed"
    summary = train_recipe(recipe_for(data, **fields), out)
    log = (out / "train.log").read_text()
    planned = int(log.split("probe steps")[1].split("-> ")[1].split(" steps")[0])
    assert planned > 4 * summary["steps"]  # the probe's plan was far off
    assert "s per step lately" in log  # ... and was corrected
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["kind"] == "train"]
    assert rows[-1]["lr"] == 0.0 and summary["train_time_s"] < 2 * 4


def test_muon_resumes_bitwise(data, tmp_path):
    fields = dict(optimizer="muon", max_steps=12, checkpoint_every=6, eval_every=0, sample_prompts=[])
    out = tmp_path / "muon"
    first = train_recipe(recipe_for(data, **fields), out)
    assert first["steps"] == 12 and first["rollbacks"] == 0
    losses = train_losses(out)
    assert losses[12] < losses[1] - 0.1  # it learns
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["muon_lr"] for r in rows if r["kind"] == "train" and r["step"] == 4} == {0.02}  # peak after warmup
    assert (out / "checkpoints" / "step-6" / "optimizer_1.bin").is_file()  # Muon's momentum and AdamW's moments
    # drop the end of the run and continue from step 6: the same losses, bit for bit
    shutil.rmtree(out / "checkpoints" / "step-12")
    shutil.rmtree(out / "model")
    train_recipe(recipe_for(data, **fields), out)
    assert train_losses(out) == losses
    adamw = train_recipe(recipe_for(data, max_steps=12, checkpoint_every=0, eval_every=0, sample_prompts=[]),
                  tmp_path / "adamw")
    assert adamw["final_train_loss"] != first["final_train_loss"]


def test_muon_under_two_processes_matches_one(data, tmp_path):
    fields = dict(optimizer="muon", max_steps=6, checkpoint_every=0, eval_every=0, sample_prompts=[])
    reference = tmp_path / "one"
    train_recipe(recipe_for(data, **fields), reference)
    recipe = write_recipe(tmp_path / "recipe.yaml", recipe_for(data, **fields))
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lmfoundry", "train"]
    result = run_cli([str(recipe), "--output", str(tmp_path / "ddp")], {"ACCELERATE_USE_CPU": "1"}, module=launch)
    assert result.returncode == 0, result.stderr[-3000:]
    ours, expected = train_losses(tmp_path / "ddp"), train_losses(reference)
    assert sorted(ours) == list(range(1, 7))
    assert max(abs(ours[s] - expected[s]) for s in ours) < 1e-5


def test_model_auto_trains_for_the_budget_and_keeps_its_plan(data, tmp_path):
    recipe = recipe_for(data, max_steps=None, max_time="3s", warmup_steps=None, checkpoint_every=0, eval_every=0,
                        sample_prompts=[])
    for name in ("seq_len", "micro_batch_size", "global_batch_size", "lr"):
        del recipe["train"][name]
    recipe["model"] = {"auto": True}  # a recipe file's form of model: auto
    summary = train_recipe(recipe, tmp_path / "auto")
    plan = json.loads((tmp_path / "auto" / "auto_plan.json").read_text())
    saved = yaml.safe_load((tmp_path / "auto" / "recipe.yaml").read_text())
    assert saved["model"]["hidden_size"] == plan["hidden_size"] and saved["train"]["seq_len"] == plan["seq_len"]
    assert plan["vocab_size"] == saved["model"]["vocab_size"]  # the tokenizer's vocabulary
    assert summary["steps"] >= 1 and sorted(train_losses(tmp_path / "auto")) == list(range(1, summary["steps"] + 1))
    assert "model: auto chose" in (tmp_path / "auto" / "train.log").read_text()


def test_max_time_resume_counts_the_time_already_spent(data, tmp_path):
    fields = dict(max_steps=None, max_time="3s", warmup_steps=None, schedule="wsd", min_lr_ratio=0.0,
                  checkpoint_every=2, keep_last=100, eval_every=0, sample_prompts=[], seq_len=16,
                  micro_batch_size=4, global_batch_size=4)
    out = tmp_path / "timed"
    train_recipe(recipe_for(data, **fields), out)
    steps = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("step-*"))
    middle = steps[len(steps) // 2]
    for later in steps:
        if later > middle:
            shutil.rmtree(out / "checkpoints" / f"step-{later}")
    shutil.rmtree(out / "model")
    spent = json.loads((out / "checkpoints" / f"step-{middle}" / "COMPLETE").read_text())
    summary = train_recipe(recipe_for(data, **fields), out)  # resumes from the middle checkpoint, no new probe
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["resumed"]) for r in records if r["kind"] == "run"] == [(0, False), (middle, True)]
    rows = {r["step"]: r for r in records if r["kind"] == "train"}
    assert sorted(rows) == list(range(1, summary["steps"] + 1)) and spent["step"] == middle
    # the resumed session's clock starts from the checkpoint's, not from zero
    assert rows[middle + 1]["train_time_s"] > rows[middle]["train_time_s"] > rows[middle + 1]["elapsed_s"]
    assert rows[summary["steps"]]["lr"] == 0.0  # and the plan it resumed still ends decayed
    assert "probe steps" not in (out / "train.log").read_text().split("resumed from")[-1]
