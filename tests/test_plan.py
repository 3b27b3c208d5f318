"""The planner: exact parameters and FLOPs, steps from the recipe, memory checked against real
training steps (heap peak on CPU, benchmarks/model_speed.py's HeapPeak), and the shipped recipes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
from lmfoundry.recipe import load_recipe
from lmfoundry.training.plan import format_plan, plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from model_speed import step_peak_memory_mb


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize(("model", "batch", "seq"), [
    ({"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4,
      "num_key_value_heads": 2, "vocab_size": 2048}, 4, 256),
    ({"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 6, "num_attention_heads": 4,
      "num_key_value_heads": 4, "vocab_size": 1024}, 8, 128),
])
def test_memory_model_matches_measured_peak_of_a_training_step(model, batch, seq, checkpointing):
    fields = {**model, "max_position_embeddings": seq}
    torch.manual_seed(0)
    net = FoundryForCausalLM(FoundryConfig(**fields))
    if checkpointing:
        net.activation_checkpointing_enable()
    measured = step_peak_memory_mb(net, torch.randint(0, fields["vocab_size"], (batch, seq))) * 2**20
    p = plan({"model": fields, "train": {"seq_len": seq, "micro_batch_size": batch, "max_steps": 1}}, bf16=False)
    assert p.parameters == net.num_parameters() and p.flops_per_token == net.flops_per_token(seq)
    # what a step adds over the weights and AdamW state it holds between steps: gradients + activations
    estimate = p.grads_bytes + (p.activations_checkpointed_bytes if checkpointing else p.activations_bytes)
    assert 0.65 < measured / estimate < 1.35, (measured, estimate)


def test_recipes_steps_tokens_sharding_and_time():
    small = plan(load_recipe("small"), gpus=1, gpu="h100", mfu=0.4)
    assert 120e6 < small.parameters < 130e6 and small.tokens_per_step == 262_144
    assert small.steps == 9537 and small.tokens == small.steps * small.tokens_per_step
    assert small.hours == pytest.approx(small.flops_per_token * small.tokens / (989e12 * 0.4) / 3600)
    big = load_recipe("1b")
    ddp, fsdp = plan(big, gpus=8, sharding="ddp"), plan(big, gpus=8, sharding="fsdp")
    zero2 = plan(big, gpus=8, sharding="zero2")
    assert ddp.weights_bytes == 4 * ddp.parameters and fsdp.weights_bytes == ddp.weights_bytes / 8
    assert zero2.weights_bytes == ddp.weights_bytes and zero2.optimizer_bytes == ddp.optimizer_bytes / 8
    assert fsdp.activations_checkpointed_bytes < fsdp.activations_bytes / 5
    text = format_plan(fsdp)
    assert "fsdp over 8" in text and "time at 40% MFU" in text
    with pytest.raises(ValueError, match="--gpu: expected one of"):
        plan(big, gpu="tpu")
