"""Unit tests of the training pieces: config checks, schedules, optimizer groups, spike detector,
checkpoint manager (atomic writes, markers, retention), metrics log and loss-curve plot."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from accelerate import Accelerator

from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
from lmfoundry.recipe import parse_section
from lmfoundry.training.checkpoints import COMPLETE, CheckpointManager
from lmfoundry.training.config import TrainConfig
from lmfoundry.training.metrics import JsonlLog, plot_loss_curve
from lmfoundry.training.optim import build_optimizers, param_groups
from lmfoundry.training.schedules import lr_at
from lmfoundry.training.spikes import SpikeDetector, SpikeSettings
from lmfoundry.training.throughput import mfu, peak_flops

BASE = {"shards": "s", "tokenizer": "t", "max_steps": 10}


def _cfg(**fields) -> TrainConfig:
    return parse_section(TrainConfig, {"train": {**BASE, **fields}}, "train")


def test_config_coerces_strings_and_rejects_unknown_or_bad_fields():
    cfg = _cfg(lr="1e-3", micro_batch_size="4", compile="true")
    assert cfg.lr == 1e-3 and cfg.micro_batch_size == 4 and cfg.compile is True
    with pytest.raises(ValueError, match=r"unknown field.*learning_rate"):
        _cfg(learning_rate=1e-3)
    with pytest.raises(ValueError, match=r"train\.schedule"):
        _cfg(schedule="linear")
    with pytest.raises(ValueError, match="exactly one of max_steps, max_tokens and max_time"):
        _cfg(max_tokens=100)
    with pytest.raises(ValueError, match=r"train\.shards"):
        parse_section(TrainConfig, {"train": {"tokenizer": "t", "max_steps": 1}}, "train")
    with pytest.raises(ValueError, match="poison_batches"):
        _cfg(poison_batches="7-3")
    with pytest.raises(ValueError, match="report_to"):
        _cfg(report_to="mlflow")


def test_global_batch_divides_into_processes_and_micro_batches():
    cfg = _cfg(global_batch_size=16, micro_batch_size=4)
    assert cfg.grad_accum_for(1) == 4 and cfg.grad_accum_for(2) == 2 and cfg.grad_accum_for(4) == 1
    with pytest.raises(ValueError, match=r"not divisible by processes \(3\) x micro_batch_size \(4\)"):
        cfg.grad_accum_for(3)
    assert _cfg(max_steps=None, max_tokens=1000).total_steps(tokens_per_step=300) == 4


def test_cosine_schedule_warms_up_then_decays_to_min_lr():
    kw = dict(lr=1.0, total_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [lr_at(s, schedule="cosine", **kw) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))  # monotone after warmup
    assert lrs[-1] == pytest.approx(0.1)
    assert lr_at(55, schedule="cosine", **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 89)))


def test_wsd_schedule_is_flat_then_decays_linearly_over_the_last_fraction():
    kw = dict(lr=2.0, total_steps=100, warmup_steps=10, min_lr_ratio=0.0, decay_fraction=0.2)
    lrs = [lr_at(s, schedule="wsd", **kw) for s in range(100)]
    assert lrs[10:80] == [2.0] * 70
    assert lrs[80] == pytest.approx(2.0 * 19 / 20) and lrs[99] == pytest.approx(0.0)
    assert lr_at(50, schedule="constant", **kw) == 2.0


def test_no_weight_decay_on_norms_biases_and_embeddings():
    config = FoundryConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, attention_bias=True, tie_word_embeddings=False)
    model = FoundryForCausalLM(config)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    not_decayed = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "model.layers.0.self_attn.q_proj.weight" in decayed and "lm_head.weight" in decayed
    assert {"model.embed_tokens.weight", "model.norm.weight", "model.layers.0.input_layernorm.weight",
            "model.layers.0.self_attn.q_proj.bias"} <= not_decayed
    assert len(decayed) + len(not_decayed) == len(list(model.parameters()))


def test_spike_detector_flags_zscore_nonfinite_and_early_ratio():
    det = SpikeDetector(SpikeSettings(window=32, min_history=8, zscore=6.0, ratio=3.0))
    assert not det.check(3.0, 1.0).is_spike  # no history: nothing to compare with
    det.record(3.0, 1.0)
    assert det.check(10.0, 1.0).reason == "loss ratio"  # early guard
    assert det.check(float("nan"), 1.0).reason == "non-finite loss"
    assert det.check(3.0, float("inf")).reason == "non-finite grad_norm"
    for i in range(20):
        det.record(3.0 + 0.01 * (i % 3), 1.0 + 0.01 * (i % 2))
    assert not det.check(3.1, 1.5).is_spike  # within the std floors (1% of the loss, 10% of the norm)
    verdict = det.check(3.5, 1.0)
    assert verdict.is_spike and verdict.reason == "loss z-score" and verdict.zscore > 6
    assert det.check(3.0, 1.8).reason == "grad_norm z-score"
    assert not det.check(2.0, 1.0).is_spike  # only upward moves count
    quiet_grads = SpikeDetector(SpikeSettings(window=32, min_history=8, grad_zscore=0))
    quiet_grads.load_state_dict(det.state_dict())
    assert not quiet_grads.check(3.0, 1.8).is_spike  # grad-norm check off; non-finite still counts
    assert quiet_grads.check(3.0, float("nan")).is_spike
    # the recipe's default: the grad-norm rule judges only unclipped gradients (a clipped update is bounded)
    from lmfoundry.training.config import TrainConfig

    base = {"shards": "s", "tokenizer": "t", "max_steps": 10}
    assert TrainConfig(**base).spike_settings(10).grad_zscore == 0
    assert TrainConfig(**base, max_grad_norm=0).spike_settings(10).grad_zscore == 6
    assert TrainConfig(**base, spike_grad_zscore=4).spike_settings(10).grad_zscore == 4
    restored = SpikeDetector(SpikeSettings(window=32, min_history=8))
    restored.load_state_dict(det.state_dict())
    assert restored.check(3.5, 1.0) == verdict
    # during lr warmup the statistics describe a ramp: only NaN/Inf count
    assert not det.check(3.5, 1.8, warming_up=True).is_spike
    assert not det.check(10.0, 1.0, warming_up=True).is_spike
    assert det.check(float("inf"), 1.0, warming_up=True).reason == "non-finite loss"


def _manager(tmp_path, keep_last=2) -> tuple[CheckpointManager, Accelerator, torch.nn.Linear]:
    acc = Accelerator(cpu=True)
    model = acc.prepare(torch.nn.Linear(3, 2))
    return CheckpointManager(tmp_path / "checkpoints", acc, keep_last), acc, model


def test_checkpoints_are_atomic_and_incomplete_ones_are_never_listed(tmp_path):
    manager, _, model = _manager(tmp_path)
    ckpt = manager.save(5, {"loss": 1.0})
    assert (ckpt.path / COMPLETE).is_file() and ckpt.metadata() == {"step": 5, "loss": 1.0}
    # an interrupted write (temp folder) and a step folder without marker are ignored, then removed
    (manager.root / ".tmp-step-10").mkdir()
    (manager.root / "step-15").mkdir()
    assert [c.step for c in manager.complete()] == [5]
    manager.remove_incomplete()
    assert sorted(p.name for p in manager.root.iterdir()) == ["step-5"]
    with torch.no_grad():
        model.weight.fill_(7.0)
    manager.load(ckpt)
    assert not torch.all(model.weight == 7.0)


def test_retention_keeps_last_k_the_newest_clean_and_those_awaiting_a_verdict(tmp_path):
    manager, _, _ = _manager(tmp_path, keep_last=2)
    for step in (1, 2):
        manager.mark_clean(manager.save(step, {}))
    manager.save(3, {})
    manager.save(4, {})
    # 2 is the newest clean one; 3 and 4 await their verdict; 1 goes
    assert [c.step for c in manager.complete()] == [2, 3, 4]
    manager.mark_clean(manager.complete()[-1])
    manager.save(5, {})
    assert [c.step for c in manager.complete()] == [4, 5]
    assert manager.newest_clean().step == 4
    moved = manager.abandon_after(4, rollback_index=1)
    assert [p.name for p in moved] == ["rolledback-1-step-5"] and manager.latest().step == 4
    manager.save(5, {})  # the same rollback index again (after a resume from an older checkpoint)
    assert [p.name for p in manager.abandon_after(4, rollback_index=1)] == ["rolledback-1-step-5.1"]


def test_jsonl_log_truncates_replayed_steps_and_survives_a_cut_line(tmp_path):
    log = JsonlLog(tmp_path / "metrics.jsonl")
    for step in range(1, 6):
        log.append({"kind": "train", "step": step, "loss": 1.0 / step})
    with open(log.path, "a", encoding="utf-8") as f:
        f.write('{"kind": "train", "st')  # a process killed mid-line
    assert [r["step"] for r in log.read()] == [1, 2, 3, 4, 5]
    log.truncate_after(3)
    assert [r["step"] for r in log.read()] == [1, 2, 3]


def test_loss_curve_png_with_val_and_spikes(tmp_path):
    metrics = [{"kind": "train", "step": s, "loss": 5 - 0.1 * s} for s in range(1, 30)]
    metrics += [{"kind": "val", "step": 10, "val_loss": 4.2}, {"kind": "val", "step": 20, "val_loss": 3.3}]
    path = tmp_path / "loss_curve.png"
    plot_loss_curve(metrics, [{"step": 15, "loss": 9.0}], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert not list(tmp_path.glob("*.tmp*"))


def test_mfu_needs_a_peak():
    assert peak_flops(torch.device("cpu")) is None
    assert peak_flops(torch.device("cpu"), 1e12) == 1e12
    assert mfu(6e6, 1e4, None, 1) is None
    assert mfu(6e6, 1e4, 1e12, 2) == pytest.approx(6e10 / 2e12)


def test_memory_snapshots_restore_exactly_twice_and_follow_the_verdicts(tmp_path):
    acc = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model, optimizer = acc.prepare(model, optimizer)
    manager = CheckpointManager(tmp_path / "checkpoints", acc, clean_after=2, snapshot_every=3,
                                tracked=[model, optimizer])

    def train_step() -> None:
        model(torch.randn(2, 4)).square().sum().backward()
        optimizer.step()
        optimizer.zero_grad()

    manager.start(0)
    assert [(s.step, s.clean) for s in manager.snapshots] == [(0, True)]  # the initial state is a restore point
    for step in range(1, 4):
        train_step()
        manager.after_step(step)
    assert [(s.step, s.clean) for s in manager.snapshots] == [(0, True), (3, False)]
    weights, moments = model.weight.detach().clone(), optimizer.state_dict()["state"][0]["exp_avg"].clone()
    train_step()
    manager.after_step(4)
    train_step()
    manager.after_step(5)  # 3 + clean_after: snapshot 3 is clean, the initial one is dropped
    target = manager.newest_clean()
    assert target.step == 3 and [s.step for s in manager.snapshots] == [3]
    for _ in range(2):  # restoring must not alias the snapshot: a second rollback to it is exact too
        manager.restore(target)
        assert torch.equal(model.weight, weights)
        assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"], moments)
        train_step()
    # a disk checkpoint newer than the snapshot wins once it is clean; the branch past it is dropped
    ckpt = manager.save(6, {})
    manager.after_step(8)
    assert manager.newest_clean() == ckpt and ckpt.clean
    manager.abandon_after(6, rollback_index=1)
    assert all(s.step <= 6 for s in manager.snapshots)


def test_muon_takes_the_block_matrices_and_adamw_the_rest():
    config = FoundryConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=2, attention_bias=True, tie_word_embeddings=False)
    model = FoundryForCausalLM(config)
    muon, adamw = build_optimizers(model, _cfg(optimizer="muon"))
    names = {id(p): n for n, p in model.named_parameters()}
    in_muon = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    in_adamw = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    assert in_muon == {f"model.layers.{i}.{m}.weight" for i in range(2) for m in
                       ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
            "model.layers.0.self_attn.q_proj.bias"} <= in_adamw
    assert not in_muon & in_adamw and len(in_muon) + len(in_adamw) == len(list(model.parameters()))
    assert muon.param_groups[0]["lr"] == muon.param_groups[0]["base_lr"] == 0.02
    assert muon.param_groups[0]["momentum"] == 0.95 and adamw.param_groups[0]["base_lr"] == 3e-4
    with pytest.raises(ValueError, match=r"train.optimizer: muon needs whole weight matrices, but FSDP"):
        build_optimizers(model, _cfg(optimizer="muon"), "FSDP")
    with pytest.raises(ValueError, match=r"train.optimizer: expected one of adamw, muon"):
        _cfg(optimizer="sgd")
