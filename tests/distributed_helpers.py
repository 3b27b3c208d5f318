"""Shared by the FSDP and DeepSpeed tests: real data, the real launcher, the losses a run logged.

Every multi-process run here goes through ``accelerate launch`` exactly as a user types it, with the
config files shipped in lmfoundry/recipes/accelerate/, over gloo on CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lmfoundry.data.default_corpus import bible_jsonl_path
from lmfoundry.data.shards import TokenizeConfig, tokenize_shards
from lmfoundry.tokenization import train_tokenizer

CONFIGS = Path(__file__).resolve().parents[1] / "lmfoundry" / "recipes" / "accelerate"
MODEL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 64}


def build_data(root: Path) -> dict[str, Path]:
    """A tokenizer and token shards from ~2,000 KJV verses (real text, the real pipeline)."""
    verses = [json.loads(line)["text"] for line in bible_jsonl_path().read_text().splitlines()[:2000]]
    corpus = root / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": " ".join(verses[i:i + 8])}) + "\n"
                              for i in range(0, len(verses), 8)), encoding="utf-8")
    train_tokenizer([corpus], 512, root / "tokenizer", show_progress=False)
    tokenize_shards(TokenizeConfig(val_fraction=0.1, val_method="documents"), [corpus], root / "tokenizer", root / "shards",
                    show_progress=False)
    return {"root": root, "tokenizer": root / "tokenizer", "shards": root / "shards"}


def recipe_for(data: dict, **train_fields) -> dict:
    """A constant-lr recipe, so a resumed run may extend max_steps without changing earlier steps' lr."""
    train = {"shards": str(data["shards"]), "tokenizer": str(data["tokenizer"]), "seq_len": 32,
             "micro_batch_size": 4, "global_batch_size": 8, "max_steps": 6, "lr": 3e-3, "schedule": "constant",
             "warmup_steps": 2, "checkpoint_every": 3, "keep_last": 3, "eval_every": 0, "eval_batches": 2,
             "report_to": "none", "sample_prompts": [], "seed": 5}
    train.update(train_fields)
    return {"model": dict(MODEL), "train": train}


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def free_port() -> int:
    """A port no one listens on now: each launch gets its own rendezvous (a reused one can reach the last
    launch's store while it shuts down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(config: str | None, processes: int, args: list[str], env: dict | None = None,
           cpu: bool = True) -> subprocess.CompletedProcess:
    """``accelerate launch [--config_file CONFIG] --num_processes N -m lmfoundry train ARGS``."""
    command = ["accelerate", "launch"]
    if config is not None:
        command += ["--config_file", str(CONFIGS / config)]
    else:
        command += ["--multi_gpu"]
    command += ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--main_process_port", str(free_port()),
                "-m", "lmfoundry", "train", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(CONFIGS.parents[2]), **(env or {})}
    if cpu:
        full_env["ACCELERATE_USE_CPU"] = "1"
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=600)


def launch_train(config: str, processes: int, recipe: dict, run_dir: Path, *extra: str,
                 cpu: bool = True) -> subprocess.CompletedProcess:
    """``accelerate launch --config_file CONFIG --num_processes N -m lmfoundry train RUN.yaml --output RUN
    [EXTRA]`` with ``recipe`` written beside the run folder; the test fails (with the launch's stderr)
    unless every process exited 0."""
    path = write_recipe(run_dir.parent / f"{run_dir.name}-{processes}.yaml", recipe)
    result = launch(config, processes, [str(path), "--output", str(run_dir), *extra], cpu=cpu)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def assert_same_logits(model_dir: Path, reference_dir: Path) -> None:
    """The exported model loads as a plain FoundryForCausalLM (no DTensor left) with the reference's logits."""
    import torch

    from lmfoundry.modeling import FoundryForCausalLM

    exported = FoundryForCausalLM.from_pretrained(model_dir).eval()
    plain = FoundryForCausalLM.from_pretrained(reference_dir).eval()
    assert type(exported) is FoundryForCausalLM
    assert all(not hasattr(p, "device_mesh") for p in exported.parameters())
    ids = torch.arange(1, 33).reshape(2, 16)
    with torch.no_grad():
        assert torch.allclose(exported(ids).logits, plain(ids).logits, atol=1e-4)


def train_losses(run_dir: Path) -> dict[int, float]:
    """Loss per step as the run kept it (the last record of a step wins)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if r["kind"] == "train"}


def max_loss_gap(ours: dict[int, float], reference: dict[int, float]) -> float:
    assert set(ours) <= set(reference), (sorted(ours), sorted(reference))
    return max(abs(ours[s] - reference[s]) for s in ours)


# The real services of .ci/services.sh (tests that need them skip, saying how to start them).
START = "start them with: source .ci/services.sh && services_start"


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True)
    return result.returncode == 0 and "up" in result.stdout


def _ray_up() -> bool:
    if not os.environ.get("RAY_ADDRESS"):
        return False
    import ray

    try:
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    except Exception:
        return False
    return True


slurm = pytest.mark.skipif(not _slurm_up(), reason=f"no Slurm cluster reachable (sinfo); {START}")
ray_cluster = pytest.mark.skipif(not _ray_up(), reason=f"no Ray cluster at RAY_ADDRESS; {START}")


# The executor_options every Slurm test passes (the one-node cluster of .ci/services.sh: partition debug,
# 2 CPUs; 1 GB per CPU so two tasks fit beside each other).
SLURM_OPTIONS = {"partition": "debug", "time": "00:10:00", "mem_per_cpu_gb": 1}


def hold_the_node() -> str:
    """A job taking both CPUs of the node, so what is submitted next stays queued until it is cancelled."""
    result = subprocess.run(["sbatch", "--parsable", "-p", "debug", "-t", "5", "-c", "2", "--mem-per-cpu=100M",
                             "-o", "/dev/null", "--wrap", "sleep 300"], capture_output=True, text=True, check=True)
    job = result.stdout.strip().split(";")[0]
    for _ in range(120):  # until it runs
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
        if "RUNNING" in state:
            return job
        time.sleep(0.5)
    raise AssertionError(f"blocker job {job} never started")


def wait_for_queue_to_empty(timeout_s: float = 300) -> None:
    """Until Slurm holds no job (every submitted array ran and ended); fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, subprocess.run(["squeue"], capture_output=True, text=True).stdout
        time.sleep(1)
