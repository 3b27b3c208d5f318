"""`lmfoundry run`: every stage end to end on a slice of the built-in corpus, then rerun and resume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from distributed_helpers import SLURM_OPTIONS, hold_the_node, ray_cluster, slurm, wait_for_queue_to_empty
from test_curation import records_of
from test_tokenize_step import documents
from transformers import AutoModelForCausalLM, pipeline

from lmfoundry.cli import main
from lmfoundry.data.default_corpus import write_default_corpus
from lmfoundry.layout import STAGES, RunLayout

TINY_OVERRIDES = [
    "--tokenizer.vocab_size", "384",
    "--model.hidden_size", "64",
    "--model.intermediate_size", "128",
    "--model.num_hidden_layers", "2",
    "--model.num_attention_heads", "4",
    "--model.num_key_value_heads", "2",
    "--model.max_position_embeddings", "64",
    "--train.seq_len", "64",
    "--train.micro_batch_size", "16",
    "--train.global_batch_size", "16",
    "--train.max_steps", "60",
    "--train.lr", "1e-2",
    "--train.warmup_steps", "5",
    "--train.eval_every", "30",
    "--train.checkpoint_every", "30",
    "--train.sample_every", "0",
    "--train.report_to", "none",
    "--tokenize.val_fraction", "0.1",
    "--data.workers", "2",
    "--data.tasks", "2",
    "--data.progress", "false",
]


@pytest.fixture(scope="module")
def corpus_slice(tmp_path_factory):
    """A few Bible chapters and stdlib modules from the built-in corpus, as raw folders."""
    root = tmp_path_factory.mktemp("corpus")
    folders = write_default_corpus(root / "full")
    books, code = root / "books", root / "code"
    books.mkdir()
    code.mkdir()
    for path in sorted(folders["books"].glob("01-genesis-*.txt"))[:40]:
        shutil.copy(path, books)
    for name in ("bisect.py", "colorsys.py", "fnmatch.py", "keyword.py", "this.py"):
        shutil.copy(folders["code"] / name, code)
    return [str(books), str(code)]


@pytest.fixture(scope="module")
def finished_run(corpus_slice, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    inputs = "[" + ", ".join(corpus_slice) + "]"
    args = ["run", "tiny", "--output", str(run_dir), "--data.inputs", inputs, *TINY_OVERRIDES]
    assert main(args) == 0
    return run_dir, args


def test_run_builds_every_stage_and_a_loadable_model(finished_run):
    run_dir, _ = finished_run
    layout = RunLayout(run_dir)
    for stage in STAGES:
        assert layout.marker(stage).exists(), stage
    curated = json.loads(layout.marker("curate").read_text())["result"]
    assert 0 < curated["documents_kept"] <= curated["documents_read"] == 45  # 40 chapters + 5 modules
    assert (layout.shards / "manifest.json").exists()
    assert (layout.train / "loss_curve.png").stat().st_size > 0
    results = json.loads((layout.eval / "results.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    unigram = summary["stages"]["eval"]["result"]["unigram_baseline"]["bits_per_byte"]
    model_bpb = results["results"]["bpb"]["bits_per_byte"]
    assert 0 < model_bpb < unigram, (model_bpb, unigram)

    model = AutoModelForCausalLM.from_pretrained(layout.model)
    assert model.config.model_type == "foundry"
    assert "lmfoundry" in (layout.model / "README.md").read_text()
    generator = pipeline("text-generation", model=str(layout.model))
    text = generator("And God said", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    assert text.startswith("And God said") and len(text) > len("And God said")


def test_rerun_skips_complete_stages_and_redoes_an_unfinished_one(finished_run, capsys):
    run_dir, args = finished_run
    layout = RunLayout(run_dir)
    weights = layout.model / "model.safetensors"
    before = weights.stat().st_ino
    layout.marker("eval").unlink()  # as if the run had been interrupted during evaluation
    layout.marker("export").unlink()
    capsys.readouterr()
    assert main(args) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    skipped = {stage for stage, record in summary["stages"].items() if record["skipped"]}
    assert skipped == {"curate", "tokenizer", "tokenize", "train"}
    assert layout.marker("eval").exists() and layout.marker("export").exists()
    assert weights.stat().st_ino != before  # export ran again: a fresh copy replaced the folder
    assert "skipped: already complete" in capsys.readouterr().out


def test_a_bad_recipe_fails_before_any_stage_runs(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", "tiny", "--output", str(run_dir), "--train.nosuchfield", "1"]) == 2
    assert "nosuchfield" in capsys.readouterr().err
    assert not (run_dir / ".stages").exists()


def test_tokenize_stage_on_a_cluster_executor_stops_then_resumes(finished_run, tmp_path, monkeypatch, capsys):
    """``tokenize.executor: slurm``: the run submits the tasks and stops without the stage's marker;
    once the array has run, the same command merges the shards (the same tokens as the local
    stage) and carries on. Slurm is a fake ``sbatch``; the array's tasks are played here."""
    import dill

    source, args = finished_run
    run_dir = tmp_path / "run"
    layout, done = RunLayout(run_dir), RunLayout(source)
    for stage in ("curate", "tokenizer"):  # reuse the finished run's first two stages
        shutil.copytree(getattr(done, stage), getattr(layout, stage))
        layout.marker(stage).parent.mkdir(exist_ok=True)
        shutil.copy(done.marker(stage), layout.marker(stage))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = {"sbatch": "echo Submitted batch job 42", "scontrol": "echo node1", "sinfo": "echo 'cpu* 4 16000'",
            "squeue": "true"}  # squeue: nothing queued (the array is played below)
    for name, body in fake.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    slurm = json.dumps({"time": "00:10:00", "partition": "cpu", "slurm_logs_folder": str(tmp_path / "slurm")})
    cluster_args = [
        *[a if a != str(source) else str(run_dir) for a in args],
        "--run.stages", "[curate, tokenizer, tokenize]",
        "--tokenize.tasks", "2", "--tokenize.executor", "slurm", "--tokenize.executor_options", slurm,
    ]
    capsys.readouterr()
    assert main(cluster_args) == 0
    assert "rerun the same command once they finish" in capsys.readouterr().out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pending"]["stage"] == "tokenize" and "tokenize" not in summary["stages"]
    assert not layout.marker("tokenize").exists() and not (layout.shards / "manifest.json").exists()

    with open(layout.shards / ".tokenize" / "logs" / "executor.pik", "rb") as f:
        array_job = dill.load(f)
    monkeypatch.setenv("SLURM_NODELIST", "node1")
    for index in range(2):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(index))
        array_job.run()
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    assert main(cluster_args) == 0
    assert layout.marker("tokenize").exists()
    local = json.loads((done.shards / "manifest.json").read_text())["splits"]
    merged = json.loads((layout.shards / "manifest.json").read_text())["splits"]
    for split in local:
        assert merged[split]["tokens"] == local[split]["tokens"]
        assert merged[split]["documents"] == local[split]["documents"]


@ray_cluster
def test_run_with_data_and_tokenize_on_ray_equals_the_local_run(finished_run, tmp_path):
    """``lmfoundry run`` with ``data.executor: ray`` and ``tokenize.executor: ray`` (the cluster
    .ci/services.sh starts on 127.0.0.1): the same kept documents and the same shards as local."""
    source, args = finished_run
    run_dir = tmp_path / "run"
    ray_args = [*[a if a != str(source) else str(run_dir) for a in args],
                "--run.stages", "[curate, tokenizer, tokenize]", "--data.executor", "ray",
                "--tokenize.executor", "ray", "--tokenize.tasks", "2"]
    assert main(ray_args) == 0
    layout, done = RunLayout(run_dir), RunLayout(source)
    for stage in ("curate", "tokenizer", "tokenize"):
        assert layout.marker(stage).exists()
    ours, local = (json.loads((d.curate / "stats.json").read_text()) for d in (layout, done))
    assert ours["output"]["documents"] == local["output"]["documents"]
    assert [(s["name"], s["documents_out"]) for s in ours["stages"]] == \
        [(s["name"], s["documents_out"]) for s in local["stages"]]
    merged, reference = (json.loads((d.shards / "manifest.json").read_text())["splits"] for d in (layout, done))
    for split in reference:
        assert (merged[split]["tokens"], merged[split]["documents"]) == \
            (reference[split]["tokens"], reference[split]["documents"])


def kept_documents(curated) -> list[tuple[str, str]]:
    """The curated folder's documents as sorted (id, text) pairs."""
    return sorted((record["id"], record["text"]) for record in records_of(curated))


@slurm
def test_run_with_data_and_tokenize_on_slurm_submits_refuses_while_queued_then_equals_the_local_run(
        finished_run, tmp_path, capsys):
    """``lmfoundry run`` with ``data.executor: slurm`` and ``tokenize.executor: slurm`` on the one-node
    Slurm of .ci/services.sh: each data stage submits its job arrays and the command exits 0 saying to
    rerun; a rerun while they are queued is refused (exit 2) naming their ids; reruns after they end
    carry on, and the run ends with the local run's kept documents, tokenizer and token multisets."""
    source, args = finished_run
    run_dir = tmp_path / "run"
    options = json.dumps(SLURM_OPTIONS)
    slurm_args = [*[a if a != str(source) else str(run_dir) for a in args],
                  "--run.stages", "[curate, tokenizer, tokenize]",
                  "--data.executor", "slurm", "--data.executor_options", options,
                  "--tokenize.executor", "slurm", "--tokenize.executor_options", options, "--tokenize.tasks", "2"]
    layout, done = RunLayout(run_dir), RunLayout(source)

    def pending_stage() -> str | None:
        return json.loads(layout.summary.read_text()).get("pending", {}).get("stage")

    blocker = hold_the_node()  # the arrays stay queued behind it
    try:
        capsys.readouterr()
        assert main(slurm_args) == 0
        out = capsys.readouterr().out
        assert "stage curate: jobs submitted to the cluster" in out and "rerun the same command once they" in out
        assert pending_stage() == "curate" and not layout.marker("curate").exists()
        jobs = [json.loads(p.read_text()) for p in layout.curate.glob("**/slurm_jobs.json")]
        assert len(jobs) >= 2  # dependent arrays, one per curation stage
        assert main(slurm_args) == 2
        refusal = capsys.readouterr().err
        assert "still queued or running" in refusal, refusal
        assert all(f"{job['job_id']} ({job['stage']})" in refusal for job in jobs), refusal
    finally:
        subprocess.run(["scancel", blocker], check=True)
    wait_for_queue_to_empty()
    assert main(slurm_args) == 0  # curation completes, the tokenizer trains here, tokenization submits
    assert layout.marker("curate").exists() and layout.marker("tokenizer").exists()
    assert pending_stage() == "tokenize" and not (layout.shards / "manifest.json").exists()
    wait_for_queue_to_empty()
    assert main(slurm_args) == 0
    assert pending_stage() is None and layout.marker("tokenize").exists()

    assert kept_documents(layout.curate) == kept_documents(done.curate)
    assert (layout.tokenizer / "tokenizer.json").read_bytes() == (done.tokenizer / "tokenizer.json").read_bytes()
    for split in ("train", "val"):
        assert documents(layout.shards, split) == documents(done.shards, split)
