"""``model: auto``: the sizing rule, deterministic given the machine's FLOP/s (the run that uses it is in
test_training_run.py)."""

from __future__ import annotations

import pytest

from lmfoundry.training.sizing import apply_plan, plan_auto

GFLOPS = 20e9


def test_more_budget_buys_a_bigger_model_and_a_bigger_vocabulary():
    plans = [plan_auto(50_000_000, budget, flops_per_s=GFLOPS) for budget in ("1m", "10m", "2h", "1d")]
    params = [p.parameters for p in plans]
    assert params == sorted(params) and params[-1] > 10 * params[0]
    assert [p.vocab_size for p in plans] == sorted(p.vocab_size for p in plans)
    assert plans[-1].hidden_size > plans[0].hidden_size and plans[-1].seq_len >= plans[0].seq_len
    assert all(p.hidden_size % p.num_attention_heads == 0 and p.vocab_size % 64 == 0 for p in plans)
    big = plans[2]
    assert 10 <= big.tokens / big.parameters <= 40  # Chinchilla's ~20 tokens per parameter, on a coarse grid
    assert big.lr < plans[0].lr  # 1/sqrt(width)
    text = big.explain()
    assert "Hoffmann et al. 2022" in text and "measured here" not in text and f"vocabulary: {big.vocab_size}" in text


def test_a_small_corpus_caps_the_tokens_at_four_epochs():
    plan = plan_auto(200_000, "2h", flops_per_s=GFLOPS)
    assert plan.tokens <= 4 * plan.corpus_tokens
    assert "data-limited" in plan.explain() and "Muennighoff" in plan.explain()


def test_a_given_vocabulary_is_kept_and_the_recipe_s_own_fields_win():
    plan = plan_auto(9_000_000, "3m", flops_per_s=GFLOPS, vocab_size=4096, bytes_per_token=4.0)
    assert plan.vocab_size == 4096 and "(the tokenizer's)" in plan.explain()
    recipe = apply_plan({"model": {"auto": True}, "train": {"lr": 1e-3, "max_time": "3m"},
                         "tokenizer": {"min_frequency": 3}}, plan)
    assert recipe["model"]["hidden_size"] == plan.hidden_size and recipe["tokenizer"] == {"min_frequency": 3,
                                                                                           "vocab_size": 4096}
    assert apply_plan({"tokenizer": {"vocab_size": 2048}}, plan)["tokenizer"]["vocab_size"] == 2048
    assert recipe["train"]["lr"] == 1e-3 and recipe["train"]["seq_len"] == plan.seq_len
    with pytest.raises(ValueError, match="expected a duration"):
        plan_auto(1000, "soon", flops_per_s=GFLOPS)


def test_the_cost_formula_is_the_model_s():
    from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
    from lmfoundry.training.sizing import _mlp, shape_cost

    config = FoundryConfig(vocab_size=512, hidden_size=96, intermediate_size=_mlp(96), num_hidden_layers=2,
                           num_attention_heads=3, max_position_embeddings=128, tie_word_embeddings=True)
    model = FoundryForCausalLM(config)
    assert shape_cost(512, 96, 2, 128) == (model.num_parameters(), model.flops_per_token(128))


def test_the_rate_of_each_width_prices_its_shapes():
    """Small matmuls run far below larger ones on a CPU: priced at the widest probe's rate, the plan picks a
    bigger model than priced at the narrowest probe's, and a measured curve lies between the two."""
    from lmfoundry.training.sizing import flops_at

    curve = {64: 30e9, 128: 45e9, 256: 70e9}
    assert flops_at(curve, 32) == 30e9 and flops_at(curve, 1024) == 70e9
    assert 30e9 < flops_at(curve, 96) < 45e9 < flops_at(curve, 192) < 70e9
    slow, measured, fast = (plan_auto(50_000_000, "2h", flops_per_s=rate) for rate in (30e9, curve, 70e9))
    assert slow.parameters <= measured.parameters <= fast.parameters and slow.parameters < fast.parameters
    assert measured.flops_per_s == flops_at(curve, measured.hidden_size)
    assert "45 at width 128" in measured.explain()
