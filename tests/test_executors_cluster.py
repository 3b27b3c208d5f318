"""The data stages on a real one-node Slurm and a real local Ray cluster, against the local executor.

`.ci/run` starts both (``.ci/services.sh``: munged, slurmctld, slurmd and ``ray start --head`` on
127.0.0.1) and exports ``SLURM_CONF`` and ``RAY_ADDRESS``; run alone, these tests skip unless the
services are up (``source .ci/services.sh && services_start``).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from distributed_helpers import SLURM_OPTIONS, hold_the_node, ray_cluster, slurm, wait_for_queue_to_empty
from test_curation import FAST_URL, records_of, write_corpus
from test_tokenize_step import OPTIONS, assert_same_as_reference, corpus, reference, tok_dir  # noqa: F401

from lmfoundry.data.curation import CurateConfig, CurationError, curate
from lmfoundry.data.executors import ClusterRequestError, TaskFailedError
from lmfoundry.data.shards import TokenizeConfig, tokenize_shards


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("cluster-corpus"), chapters=8)


@pytest.fixture(scope="module")
def local_curation(books, tmp_path_factory):
    out = tmp_path_factory.mktemp("local-curated") / "out"
    return out, curate(CurateConfig(inputs=[str(p) for p in books.values()], filters=FAST_URL, workers=1, tasks=2,
                                    progress=False), out)


def curation_config(books, executor: str, **options) -> CurateConfig:
    return CurateConfig(inputs=[str(p) for p in books.values()], filters=FAST_URL, workers=2, tasks=2,
                        progress=False, executor=executor, executor_options=options)


def same_curation(out, stats, local_out, local_stats) -> None:
    assert stats["complete"] and stats["output"]["documents"] == local_stats["output"]["documents"]
    key = lambda r: (r["source"], r["id"])  # noqa: E731
    assert sorted(records_of(out), key=key) == sorted(records_of(local_out), key=key)
    assert [(s["name"], s["documents_out"]) for s in stats["stages"]] == \
        [(s["name"], s["documents_out"]) for s in local_stats["stages"]]


# ---------------------------------------------------------------------------------------------- Ray
@ray_cluster
def test_ray_curation_and_tokenization_equal_local(books, local_curation, tmp_path, tok_dir, corpus, reference):  # noqa: F811
    out = tmp_path / "curated"
    same_curation(out, curate(curation_config(books, "ray"), out), *local_curation)
    shards = tmp_path / "shards"
    manifest = tokenize_shards(TokenizeConfig(tasks=2, workers=2, executor="ray", **OPTIONS), corpus, tok_dir, shards)
    assert_same_as_reference(shards, manifest, reference)


@ray_cluster
def test_ray_failing_task_is_an_error_naming_its_log_and_oversize_requests_fail_first(tmp_path, tok_dir):  # noqa: F811
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n', encoding="utf-8")
    with pytest.raises(TaskFailedError, match=r"stage 'tokenize' on ray: 1 of 1 task\(s\) did not finish "
                                              r"\(rank 0\); see .*logs/task_00000\.log") as failure:
        tokenize_shards(TokenizeConfig(tasks=1, executor="ray", val_method="documents"), bad, tok_dir,
                        tmp_path / "shards")  # documents: no counting pass that would read the bad line first
    assert "not valid JSON" in str(failure.value)
    assert not (tmp_path / "shards" / "manifest.json").exists()
    with pytest.raises(ClusterRequestError, match=r"asks for 4 CPU\(s\).*largest Ray node has 2 CPU\(s\)"):
        tokenize_shards(TokenizeConfig(tasks=1, executor="ray", executor_options={"cpus_per_task": 4}, val_method="documents"),
                        bad, tok_dir, tmp_path / "s2")


# -------------------------------------------------------------------------------------------- Slurm
@slurm
def test_slurm_submit_refuse_while_queued_wait_rerun_equals_local(books, local_curation, tmp_path, tok_dir, corpus,  # noqa: F811
                                                                  reference):  # noqa: F811
    blocker = hold_the_node()
    try:
        out, shards = tmp_path / "curated", tmp_path / "shards"
        config = curation_config(books, "slurm", **SLURM_OPTIONS)
        assert curate(config, out)["submitted"]
        submitted = tokenize_shards(TokenizeConfig(tasks=2, executor="slurm", executor_options=SLURM_OPTIONS, **OPTIONS), corpus, tok_dir, shards)
        assert submitted["submitted"] and not submitted["complete"]
        with pytest.raises(ClusterRequestError, match=r"still queued or running: \d+ \(filter\), \d+ "
                                                      r"\(minhash_buckets\)"):
            curate(config, out)
        with pytest.raises(ClusterRequestError, match=r"still queued or running: \d+ \(tokenize\)"):
            tokenize_shards(TokenizeConfig(tasks=2, executor="slurm", executor_options=SLURM_OPTIONS, **OPTIONS), corpus, tok_dir, shards)
    finally:
        subprocess.run(["scancel", blocker], check=True)
    wait_for_queue_to_empty()
    same_curation(out, curate(config, out), *local_curation)
    manifest = tokenize_shards(TokenizeConfig(tasks=2, executor="slurm", executor_options=SLURM_OPTIONS, **OPTIONS), corpus, tok_dir, shards)
    assert_same_as_reference(shards, manifest, reference)


@slurm
def test_slurm_failed_task_is_reported_on_rerun_and_later_stages_never_start(books, tmp_path):
    inputs = tmp_path / "inputs"
    shutil.copytree(books["books"], inputs / "books")
    shutil.copy(books["jsonl"], inputs / "web.jsonl")
    config = CurateConfig(inputs=[str(inputs / "books"), str(inputs / "web.jsonl")], filters=FAST_URL, tasks=1,
                          progress=False, executor="slurm", executor_options=SLURM_OPTIONS)
    out = tmp_path / "curated"
    blocker = hold_the_node()
    try:
        assert curate(config, out)["submitted"]
        (inputs / "books").rename(tmp_path / "away")  # the input vanishes before the job runs: it fails for real
    finally:
        subprocess.run(["scancel", blocker], check=True)
    wait_for_queue_to_empty()
    (tmp_path / "away").rename(inputs / "books")  # back (the rerun plans over it), yet the failed task stays failed
    with pytest.raises(CurationError, match=r"stage 'filter' on slurm: 1 of 1 task\(s\) did not finish \(rank 0\) "
                                            r"\(Slurm job \d+; .*slurm_logs\); see .*filter/logs/task_00000\.log"):
        curate(config, out)
    assert not list(out.glob("*.jsonl.gz"))  # the output stage never ran
    assert not (out / ".curate" / "logs" / "output" / "completions").exists()


@slurm
def test_slurm_requests_are_checked_before_submission(tmp_path, tok_dir, corpus):  # noqa: F811
    def submit(**options):
        return tokenize_shards(TokenizeConfig(tasks=1, executor="slurm", executor_options=options), corpus, tok_dir, tmp_path / "s")

    with pytest.raises(ClusterRequestError, match=r"executor 'slurm' need partition and time \(e\.g\."):
        submit()
    with pytest.raises(ClusterRequestError, match=r"need time"):
        submit(partition="debug")
    with pytest.raises(ClusterRequestError, match=r"'gpu' is not a partition of this cluster \(sinfo lists: debug\)"):
        submit(partition="gpu", time="00:10:00")
    with pytest.raises(ClusterRequestError, match=r"asks for 4 CPU\(s\) .* has 2 CPU\(s\)"):
        submit(partition="debug", time="00:10:00", cpus_per_task=4)
    with pytest.raises(ClusterRequestError, match=r"asks for 1 CPU\(s\) and 1048576 MB"):
        submit(partition="debug", time="00:10:00", mem_per_cpu_gb=1024)
    assert not subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip()
