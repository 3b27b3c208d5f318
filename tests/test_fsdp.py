"""FSDP2 through accelerate on 2 CPU processes (gloo): real sharding, the losses of one process,
sharded DCP checkpoints that reshard 2 -> 1 -> 2, a clear refusal without FSDP, and an export that
loads as a plain FoundryForCausalLM.

The run is launched as a user would: ``ACCELERATE_USE_CPU=1 accelerate launch --config_file
lmfoundry/recipes/accelerate/fsdp.yaml --num_processes 2 -m lmfoundry train RECIPE``.
"""

from __future__ import annotations

import shutil

import pytest
import torch.distributed.checkpoint as dcp
from distributed_helpers import (
    assert_same_logits,
    build_data,
    launch,
    launch_train,
    max_loss_gap,
    recipe_for,
    train_losses,
    write_recipe,
)
from train_helpers import train_recipe

from lmfoundry.modeling import FoundryForCausalLM


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_data(tmp_path_factory.mktemp("fsdp-data"))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """One process, no FSDP, 2 accumulation steps, 9 steps: what every sharded run must reproduce."""
    out = tmp_path_factory.mktemp("fsdp-reference") / "run"
    train_recipe(recipe_for(data, max_steps=9), out)
    return out


@pytest.fixture(scope="module")
def fsdp_run(data, tmp_path_factory):
    """2 FSDP processes for 6 steps (checkpoints at 3 and 6)."""
    root = tmp_path_factory.mktemp("fsdp-run")
    return root, launch_train("fsdp.yaml", 2, recipe_for(data), root / "run")


def test_parameters_are_sharded_dtensors_and_losses_match_one_process(fsdp_run, reference):
    root, result = fsdp_run
    assert "FSDP: 21 of 21 parameter tensors sharded" in result.stderr  # every parameter a DTensor
    model = FoundryForCausalLM.from_pretrained(reference / "model")
    total = model.num_parameters()
    assert f"rank 0 holds {total // 2} of {total} parameters" in result.stderr
    assert "2 processes x 1 micro-batches x 4 sequences" in result.stderr
    assert max_loss_gap(train_losses(root / "run"), train_losses(reference)) < 1e-5
    # the checkpoint is sharded DCP: each tensor saved as one dim-0 chunk per rank, of the expected size
    ckpt = root / "run" / "checkpoints" / "step-6"
    assert not (ckpt / "model.safetensors").exists() and not (ckpt / "pytorch_model.bin").exists()
    metadata = dcp.FileSystemReader(str(ckpt / "pytorch_model_fsdp_0")).read_metadata()
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    checked = 0
    for key, item in metadata.state_dict_metadata.items():
        name = key.removeprefix("model.")
        if name not in shapes:
            continue
        rows = shapes[name][0]
        assert tuple(item.size) == shapes[name]
        assert sorted((c.offsets[0], c.sizes[0]) for c in item.chunks) == [(0, (rows + 1) // 2),
                                                                           ((rows + 1) // 2, rows // 2)], key
        checked += 1
    assert checked == len(shapes)
    assert (ckpt / "optimizer_0" / ".metadata").is_file()
    assert sorted(p.name for p in ckpt.glob("random_states_*.pkl")) == ["random_states_0.pkl", "random_states_1.pkl"]


def test_dcp_checkpoint_reshards_2_to_1_to_2_and_export_is_a_plain_model(fsdp_run, reference, data, tmp_path):
    root, _ = fsdp_run
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copytree(root / "run" / "checkpoints" / "step-3", run / "checkpoints" / "step-3")
    one = launch_train("fsdp.yaml", 1, recipe_for(data), run, "--resume")  # 2 -> 1, steps 4-6
    assert "resumed from" in one.stderr and "1 processes x 2 micro-batches" in one.stderr
    launch_train("fsdp.yaml", 2, recipe_for(data, max_steps=9), run, "--resume")  # 1 -> 2, steps 7-9
    ours, expected = train_losses(run), train_losses(reference)
    assert sorted(ours) == list(range(4, 10))
    assert max_loss_gap(ours, expected) < 1e-5
    # the export gathered the shards into an ordinary model: same logits as the unsharded run's
    assert_same_logits(run / "model", reference / "model")


def test_fsdp_checkpoint_resumes_without_fsdp_and_a_plain_one_under_fsdp_is_refused(fsdp_run, reference, data,
                                                                                      tmp_path):
    root, _ = fsdp_run
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copytree(root / "run" / "checkpoints" / "step-3", run / "checkpoints" / "step-3")
    train_recipe(recipe_for(data), run, resume=True)  # one process, no FSDP: the DCP shards are converted
    assert max_loss_gap(train_losses(run), train_losses(reference)) < 1e-5
    assert sorted(train_losses(run)) == [4, 5, 6]
    assert not list((run / "checkpoints").glob(".converted-*"))
    assert (run / "checkpoints" / "step-6" / "model.safetensors").is_file()  # it continues in its own layout
    # the other way round (whole files into FSDP) is refused before training, saying how to resume
    plain = tmp_path / "plain"
    (plain / "checkpoints").mkdir(parents=True)
    shutil.copytree(reference / "checkpoints" / "step-3", plain / "checkpoints" / "step-3")
    recipe = write_recipe(tmp_path / "recipe.yaml", recipe_for(data))
    result = launch("fsdp.yaml", 1, [str(recipe), "--output", str(plain), "--resume"])
    assert result.returncode != 0
    assert "written under plain and this run is FSDP, which cannot read it: resume it under DDP or one process" \
        in result.stderr


def test_launch_that_would_not_run_as_asked_stops_before_training(data, tmp_path):
    recipe = write_recipe(tmp_path / "recipe.yaml", recipe_for(data))
    # --multi_gpu on a machine without GPUs: two processes that each think they are the only one
    result = launch(None, 2, [str(recipe), "--output", str(tmp_path / "run")], cpu=False)
    assert result.returncode != 0  # each rank exits 2 with the one-line error; the launcher reports 1
    assert "lmfoundry: error: the launcher started 2 processes" in result.stderr
    assert "the launcher started 2 processes (WORLD_SIZE=2) but accelerate joined 1" in result.stderr
    assert "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2" in result.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
