"""DeepSpeed ZeRO-2 and ZeRO-3 through accelerate on 2 CPU processes (DeepSpeed's CPU accelerator,
gloo): the losses of one process with accumulation, real partitions, whole-model parameter counts,
an export that loads as a plain model; and launches that would silently run something else refused.

Launched as a user would: ``accelerate launch --config_file lmfoundry/recipes/accelerate/deepspeed_zero3.yaml
--num_processes 2 -m lmfoundry train RECIPE`` (without ACCELERATE_USE_CPU: accelerate drops DeepSpeed
under it). `.ci/run` installs deepspeed (``DS_BUILD_OPS=0 pip install --no-build-isolation deepspeed``).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from distributed_helpers import (
    assert_same_logits,
    build_data,
    launch_train,
    max_loss_gap,
    recipe_for,
    train_losses,
)
from train_helpers import train_recipe

from lmfoundry.modeling import FoundryForCausalLM

pytest.importorskip("deepspeed", reason="deepspeed is not installed: DS_BUILD_OPS=0 pip install "
                                        "--no-build-isolation deepspeed (.ci/run does)")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_data(tmp_path_factory.mktemp("ds-data"))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds-reference") / "run"
    train_recipe(recipe_for(data, checkpoint_every=0), out)
    return out


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_shards_and_matches_one_process(stage, data, reference, tmp_path):
    result = launch_train(f"deepspeed_zero{stage}.yaml", 2, recipe_for(data, checkpoint_every=0), tmp_path / "run",
                          cpu=False)
    total = FoundryForCausalLM.from_pretrained(reference / "model").num_parameters()
    assert f"training {total / 1e6:.2f}M parameters" in result.stderr  # not "0.00M" under ZeRO-3
    assert "2 processes x 1 micro-batches x 4 sequences" in result.stderr
    if stage == 3:  # parameters partitioned: each rank holds half
        assert f"DEEPSPEED: 21 of 21 parameter tensors sharded; rank 0 holds {total // 2} of {total}" in result.stderr
    else:
        assert f"DEEPSPEED: 0 of 21 parameter tensors sharded; rank 0 holds {total} of {total}" in result.stderr
    assert max_loss_gap(train_losses(tmp_path / "run"), train_losses(reference)) < 1e-5
    # the optimizer state is partitioned: one fp32 master partition per rank, half the model each
    engine = tmp_path / "run" / "checkpoints" / "step-6" / "pytorch_model"
    key = "fp32_flat_groups" if stage == 3 else "single_partition_of_fp32_groups"
    shares = []
    for rank in (0, 1):
        state = torch.load(engine / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt", map_location="cpu",
                           weights_only=False)["optimizer_state_dict"]
        assert state["zero_stage"] == stage and state["partition_count"] in (2, [2, 2])
        shares.append(sum(t.numel() for t in state[key]))
    assert shares[0] == shares[1] and abs(sum(shares) - total) <= 2 * 64  # DeepSpeed pads to its alignment
    assert_same_logits(tmp_path / "run" / "model", reference / "model")


CHECK = ("from lmfoundry.training.environment import make_accelerator\n"
         "make_accelerator(mixed_precision='no')\n")


@pytest.mark.parametrize(("env", "message"), [
    ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_USE_CPU": "1"},
     "the accelerate config asked for DEEPSPEED but this run would be NO on 1 process(es): accelerate enables "
     "DeepSpeed only when the process is not forced onto the CPU"),
    ({"ACCELERATE_USE_FSDP": "true"},
     "the accelerate config asked for FSDP but this run would be NO on 1 process(es): accelerate promotes FSDP "
     "only from a multi-device launch"),
    ({"WORLD_SIZE": "2"}, "the launcher started 2 processes (WORLD_SIZE=2) but accelerate joined 1"),
])
def test_a_run_that_would_differ_from_its_launch_config_is_refused(env, message):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "FSDP_", "WORLD_SIZE"))}
    result = subprocess.run([sys.executable, "-c", CHECK], env={**clean, **env}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
