"""Tokenization as datatrove tasks: same documents' tokens and manifest as the local job, resumable."""

from __future__ import annotations

import collections
import gzip
import json
import os

import pytest
import test_shards
from test_shards import read_split, tokenize, write_jsonl
from test_tokenizer_fixtures import make_corpus

from lmfoundry.cli import main
from lmfoundry.data.dataset import PretrainDataset
from lmfoundry.data.shards import read_manifest
from lmfoundry.data.shards.steps import DocumentFiles, TokenizeShards, merge_tasks
from lmfoundry.tokenization import tokenizer_fingerprint

OPTIONS = {"val_fraction": 0.1, "shard_tokens": 5000}
tok_dir = test_shards.tok_dir  # the same tiny tokenizer (a module fixture)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three files (so two tasks get unequal shares), one holding an empty document."""
    folder = tmp_path_factory.mktemp("corpus")
    docs = make_corpus(400, seed=11)
    write_jsonl(folder / "a.jsonl", docs[:150])
    write_jsonl(folder / "b.jsonl.gz", ["", *docs[150:300]])
    write_jsonl(folder / "c.jsonl", docs[300:])
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tok_dir, corpus):
    out = tmp_path_factory.mktemp("ref") / "shards"
    return out, tokenize(corpus, tok_dir, out, **OPTIONS)


def documents(out, split):
    """A split's documents as a multiset of token tuples."""
    return collections.Counter(tuple(d.tolist()) for d in read_split(out, split))


def assert_same_as_reference(out, manifest, reference):
    ref_out, ref = reference
    assert read_manifest(out) == manifest
    for split in ("train", "val"):
        assert documents(out, split) == documents(ref_out, split)
        mine, theirs = manifest["splits"][split], ref["splits"][split]
        assert {k: v for k, v in mine.items() if k != "shards"} == {
            k: v for k, v in theirs.items() if k != "shards"
        }
    identity = ("tokenizer_fingerprint", "vocab_size", "dtype", "eos_token_id", "tokenizer", "val_fraction")
    assert {k: manifest[k] for k in identity} == {k: ref[k] for k in identity}
    assert not (out / ".tokenize").exists()


def test_two_tasks_give_the_local_jobs_documents_and_manifest(tmp_path, tok_dir, corpus, reference):
    out = tmp_path / "shards"
    manifest = tokenize(corpus, tok_dir, out, tasks=2, workers=1, **OPTIONS)
    assert_same_as_reference(out, manifest, reference)
    assert {k: manifest[k] for k in ("sources", "text_field", "shard_tokens")} == {
        k: reference[1][k] for k in ("sources", "text_field", "shard_tokens")
    }
    assert {r["path"].split("/")[1][:6] for r in manifest["shards"]} == {"00000_", "00001_"}
    for split in ("train", "val"):
        data = PretrainDataset(
            out, split, seq_len=16, expected_fingerprint=tokenizer_fingerprint(tok_dir), verify_checksums=True
        )
        assert data.get_batch(0, 0).shape == (1, 17)
    assert tokenize(corpus, tok_dir, out, tasks=2, **OPTIONS) == manifest  # complete: no-op
    with pytest.raises(FileExistsError, match="different inputs or settings"):
        tokenize(corpus, tok_dir, out, tasks=2, val_fraction=0.5)


def test_step_in_a_datatrove_pipeline_reading_curated_jsonl(tmp_path, tok_dir, corpus, reference):
    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader

    out = tmp_path / "shards"
    with pytest.raises(FileNotFoundError, match="no finished tokenization task"):
        merge_tasks(out)
    pipeline = [
        JsonlReader(str(corpus), glob_pattern="*.jsonl*"),
        TokenizeShards(tok_dir, out, **OPTIONS),
    ]
    LocalPipelineExecutor(pipeline, tasks=2, workers=1, logging_dir=str(tmp_path / "logs")).run()
    assert not (out / "manifest.json").exists()
    manifest = merge_tasks(out)
    assert_same_as_reference(out, manifest, reference)
    LocalPipelineExecutor(pipeline, tasks=2, workers=1, logging_dir=str(tmp_path / "logs")).run()  # skipped
    assert merge_tasks(out) == manifest
    # the same script with fresh logs runs again and replaces the shards in place
    LocalPipelineExecutor(pipeline, tasks=2, workers=1, logging_dir=str(tmp_path / "logs2")).run()
    assert_same_as_reference(out, merge_tasks(out), reference)


def test_rerun_skips_finished_task_and_unfinished_output_never_looks_complete(
    tmp_path, tok_dir, corpus, reference, monkeypatch
):
    from lmfoundry.data.shards import steps

    write = steps.write_json_atomic

    def lost_before_rank_1_finished(path, data):
        if path.name == "00001.json":
            raise RuntimeError("node lost")
        write(path, data)

    out = tmp_path / "shards"
    monkeypatch.setattr(steps, "write_json_atomic", lost_before_rank_1_finished)
    with pytest.raises(RuntimeError, match="node lost") as failure:
        tokenize(corpus, tok_dir, out, tasks=2, **OPTIONS)
    assert "task logs" in "".join(failure.value.__notes__)
    assert not (out / "manifest.json").exists() and not (out / "train").exists()
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        read_manifest(out)
    with pytest.raises(RuntimeError, match=r"1 of 2 tokenization tasks have not finished \(ranks 1\)"):
        merge_tasks(out)
    staging = out / ".tokenize"
    assert (staging / "logs" / "completions" / "00000").exists()
    assert not (staging / "logs" / "completions" / "00001").exists()
    assert list((staging / "train").glob("00001_*"))  # rank 1's shards, written but not recorded
    (staging / "train" / "00001_00099.ds").write_bytes(b"\x00")  # and some junk of that attempt

    monkeypatch.undo()
    seen = []
    run = TokenizeShards.run

    def recorded(step, data, rank=0, world_size=1):
        seen.append(rank)
        return run(step, data, rank, world_size)

    monkeypatch.setattr(TokenizeShards, "run", recorded)
    manifest = tokenize(corpus, tok_dir, out, tasks=2, **OPTIONS)
    assert seen == [1]  # rank 0 was skipped by its completion marker
    assert_same_as_reference(out, manifest, reference)
    assert not (out / "train" / "00001_00099.ds").exists()


def test_changed_settings_restart_the_unfinished_staging(tmp_path, tok_dir, corpus, reference, monkeypatch):
    out = tmp_path / "shards"
    monkeypatch.setattr(TokenizeShards, "run", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        tokenize(corpus, tok_dir, out, tasks=3, **OPTIONS)
    monkeypatch.undo()
    (out / ".tokenize" / "tasks").mkdir()
    (out / ".tokenize" / "tasks" / "00002.json").write_text(json.dumps({"rank": 2, "world_size": 3}))
    manifest = tokenize(corpus, tok_dir, out, tasks=2, **OPTIONS)  # not the 3-task staging
    assert_same_as_reference(out, manifest, reference)


def test_bad_inputs_are_errors_naming_the_path(tmp_path, tok_dir, corpus):
    missing_tok = tmp_path / "no-tokenizer"
    with pytest.raises(FileNotFoundError, match=str(missing_tok)):
        tokenize(corpus, missing_tok, tmp_path / "s", tasks=2)
    with pytest.raises(FileNotFoundError, match=str(missing_tok)):
        TokenizeShards(missing_tok, tmp_path / "s")
    missing_input = tmp_path / "no-such.jsonl"
    with pytest.raises(FileNotFoundError, match=str(missing_input)):
        tokenize(missing_input, tok_dir, tmp_path / "s", tasks=2)
    with pytest.raises(FileNotFoundError, match=str(missing_input)):
        DocumentFiles([corpus, missing_input])
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write('{"text": "fine"}\nnot json\n')
    with pytest.raises(ValueError, match=f"{bad}:2: not valid JSON"):
        tokenize(bad, tok_dir, tmp_path / "s", tasks=1)
    with pytest.raises(ValueError, match="executor: expected one of local, slurm, ray"):
        tokenize(corpus, tok_dir, tmp_path / "s", executor="k8s")
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_steps_survive_pickling_for_worker_processes(tok_dir, corpus):
    import multiprocess.reduction

    step = multiprocess.reduction.ForkingPickler.loads(
        multiprocess.reduction.ForkingPickler.dumps([DocumentFiles(corpus), TokenizeShards(tok_dir, "out")])
    )
    assert [len(step[0].files), step[1].ids.vocab_size] == [3, 1024]


def test_cli_tokenize_on_the_local_executor(tmp_path, tok_dir, corpus, reference, capsys):
    out = tmp_path / "shards"
    args = ["data", "tokenize", "--input", str(corpus), "--tokenizer", str(tok_dir), "--output", str(out)]
    args += ["--val-fraction", "0.1", "--shard-tokens", "5000", "--executor", "local", "--tasks", "2"]
    assert main([*args, "--workers", "1"]) == 0
    assert "train:" in capsys.readouterr().out
    assert_same_as_reference(out, read_manifest(out), reference)


def test_slurm_submits_then_a_rerun_after_the_array_merges(tmp_path, tok_dir, corpus, reference, monkeypatch):
    """The cluster path without a cluster: a fake ``sbatch``, and the array's tasks played here."""
    import dill

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {
        "sbatch": 'echo "$@" >> "$(dirname "$0")/calls"; echo Submitted batch job 42',
        "scontrol": "echo node1",
        "sinfo": "echo 'cpu* 4 16000'",  # the partition the request names, big enough
        "squeue": "true",  # nothing queued: the array is played below
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "shards"
    slurm = {"time": "00:10:00", "partition": "cpu", "slurm_logs_folder": str(tmp_path / "slurm")}
    run = {"tasks": 2, "executor": "slurm", "executor_options": slurm, **OPTIONS}
    submitted = tokenize(corpus, tok_dir, out, **run)
    assert submitted["submitted"] and not (out / "manifest.json").exists()
    assert (bin_dir / "calls").exists()
    assert "--array=0-1" in (out / ".tokenize" / "logs" / "launch_script.slurm").read_text()  # two tasks
    with open(out / ".tokenize" / "logs" / "executor.pik", "rb") as f:
        array_job = dill.load(f)
    monkeypatch.setenv("SLURM_NODELIST", "node1")
    for index in range(2):  # what each array task runs on its node
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(index))
        array_job.run()
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    assert_same_as_reference(out, tokenize(corpus, tok_dir, out, **run), reference)
