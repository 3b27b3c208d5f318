"""The pretraining loop: a plain Accelerate loop that reads like the algorithm.

    total_steps = recipe's, or planned from a few timed probe steps (train.max_time)
    for step in range(start, total_steps):
        lr = schedule(step)
        for micro_step in range(grad_accum):              # gradient accumulation
            batch = dataset.get_batch(step, micro_step)   # pure function of (seed, step, rank)
            loss = model(batch) / grad_accum; backward    # grads synced on the last micro-step only
        loss, grad_norm = global mean loss, clipped norm  # identical on every rank
        if spike(loss, grad_norm): restore the newest clean restore point (disk checkpoint or
                                   memory snapshot), skip the offending batches, lower the lr a while
        else: optimizer step; log; validate; checkpoint; judge restore points; refine a time plan

Because the batch of a step is a function of its number (no iterator state), restoring a checkpoint
and skipping data are exact: a run killed and resumed produces, bit for bit on CPU, the losses of an
uninterrupted run. Every decision that changes control flow is made from values reduced over all
processes, so all ranks take it together.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import DistributedType, ProjectConfiguration, set_seed
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from lmfoundry.data.dataset import PretrainDataset
from lmfoundry.errors import DivergedError
from lmfoundry.locks import output_lock
from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
from lmfoundry.recipe import coerce_fields, dump_recipe, load_recipe
from lmfoundry.tokenization import special_token_ids, tokenizer_fingerprint
from lmfoundry.training import faults
from lmfoundry.training.budget import planned_steps
from lmfoundry.training.checkpoints import Checkpoint, CheckpointManager
from lmfoundry.training.config import TrainConfig
from lmfoundry.training.environment import make_accelerator, parameter_layout, run_record
from lmfoundry.training.metrics import JsonlLog, plot_loss_curve
from lmfoundry.training.optim import build_optimizers
from lmfoundry.training.recipe_check import check_resume_recipe
from lmfoundry.training.schedules import lr_at
from lmfoundry.training.sections import saved_plan
from lmfoundry.training.spikes import SpikeDetector, Verdict
from lmfoundry.training.throughput import mfu, peak_flops
from lmfoundry.training.validation import lm_loss, sample, validate

logger = logging.getLogger(__name__)

# the model section: FoundryConfig fields, a FoundryConfig, or None for the defaults
ModelFields = dict[str, Any] | FoundryConfig | None


class TrainingDivergedError(DivergedError):
    """Too many loss-spike rollbacks: the run stops, its checkpoints intact."""


class RunState:
    """Loop state saved in every checkpoint next to model/optimizer/RNG (via register_for_checkpointing)."""

    def __init__(self, dataset: PretrainDataset, detector: SpikeDetector):
        self.dataset, self.detector = dataset, detector
        self.step = 0  # optimizer steps completed
        self.tokens = 0  # training tokens consumed by completed steps
        self.rollbacks = 0
        self.lr_reduced_until = 0  # steps before this one use lr * spike_lr_factor
        # the plan: fixed by the recipe, or for a max_time run measured and refined while the lr is flat
        self.total_steps = 0
        self.warmup_steps = 0
        self.plan_step = 0  # where the plan was last checked
        self.restart_clock(0.0)

    def restart_clock(self, train_time_s: float) -> None:
        """Continue the training-time clock from ``train_time_s`` seconds, counting from now."""
        self._time_before, self._clock_started = train_time_s, time.perf_counter()

    def train_time_s(self) -> float:
        """Wall-clock seconds of training over all sessions, as far as checkpoints carried them."""
        return self._time_before + time.perf_counter() - self._clock_started

    def state_dict(self) -> dict:
        return {
            "step": self.step, "tokens": self.tokens, "rollbacks": self.rollbacks,
            "lr_reduced_until": self.lr_reduced_until, "train_time_s": self.train_time_s(),
            "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
            "plan_step": self.plan_step,
            "dataset": self.dataset.state_dict(), "detector": self.detector.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step, self.tokens = state["step"], state["tokens"]
        self.rollbacks, self.lr_reduced_until = state["rollbacks"], state["lr_reduced_until"]
        self.restart_clock(state.get("train_time_s", 0.0))  # checkpoints before the clock existed: 0
        # checkpoints from before plans were saved keep the plan the recipe gives
        self.total_steps = state.get("total_steps", self.total_steps)
        self.warmup_steps = state.get("warmup_steps", self.warmup_steps)
        self.plan_step = state.get("plan_step", 0)
        self.dataset.load_state_dict(state["dataset"])
        self.detector.load_state_dict(state["detector"])


# what FoundryConfig.to_dict() holds that transformers writes, not a recipe
_CONFIG_METADATA = {"architectures", "model_type", "transformers_version", "_name_or_path"}


def model_config_from_recipe(fields: dict[str, Any], tokenizer) -> FoundryConfig:
    """``FoundryConfig`` from the recipe's ``model`` section; vocab size and special ids from the tokenizer."""
    allowed = set(inspect.signature(FoundryConfig.__init__).parameters) - {"self", "kwargs"}
    allowed |= set(FoundryConfig().to_dict()) - _CONFIG_METADATA
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValueError(f"recipe section 'model': unknown field(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(allowed))}")
    from_tokenizer = special_token_ids(tokenizer)
    fields = {**from_tokenizer, **coerce_fields(FoundryConfig, fields, "model")}
    if fields["vocab_size"] < from_tokenizer["vocab_size"]:
        raise ValueError(f"recipe field model.vocab_size={fields['vocab_size']} is smaller than the "
                         f"tokenizer's vocabulary ({from_tokenizer['vocab_size']})")
    return FoundryConfig(**fields)


def _mixed_precision(choice: str) -> str:
    """``auto``: what ``accelerate launch`` configured, else bf16 on a GPU that has it, else fp32."""
    if choice != "auto":
        return choice
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return os.environ["ACCELERATE_MIXED_PRECISION"]
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _prepare_output_dir(output_dir: Path, resume: bool | None) -> bool:
    """Check the run folder before any work; returns whether to resume from its checkpoints."""
    has_checkpoints = any((output_dir / "checkpoints").glob("step-*/COMPLETE"))
    if resume:
        if not output_dir.is_dir():
            raise FileNotFoundError(f"--resume: run folder {output_dir} does not exist")
        if not has_checkpoints:
            raise FileNotFoundError(f"--resume: no complete checkpoint in {output_dir / 'checkpoints'}")
    elif resume is False and has_checkpoints:
        raise FileExistsError(f"{output_dir} already holds checkpoints; resume it or choose another --output")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-test-"):
            pass
    except OSError as err:
        raise PermissionError(f"output folder {output_dir} is not writable: {err}") from err
    return has_checkpoints


def _flat_config(recipe: dict) -> dict:
    """Recipe flattened to scalar ``section.field`` pairs, as trackers (TensorBoard hparams) want."""
    flat = {}
    for section, body in recipe.items():
        for key, value in body.items():
            flat[f"{section}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def _lr_is_flat(cfg: TrainConfig, step: int, total_steps: int, warmup_steps: int) -> bool:
    """Whether the lr at ``step`` does not yet depend on ``total_steps``, so a new plan changes nothing
    done so far: before a WSD decay begins, anywhere in a constant schedule, in the first half of a
    cosine run (where a few percent more steps barely move the curve)."""
    if cfg.schedule == "wsd":
        return step < max(warmup_steps, total_steps - round(total_steps * cfg.decay_fraction))
    if cfg.schedule == "cosine":
        return step < warmup_steps + (total_steps - warmup_steps) // 2
    return True


def _due(step: int, every: int) -> bool:
    """Whether a periodic action set to run ``every`` steps (0: never) runs after ``step``."""
    return every > 0 and step % every == 0


class Trainer:
    """One training run: built from its config, run once by :meth:`fit`. Use :func:`train`."""

    def __init__(self, config: TrainConfig, output_dir: str | Path, model: ModelFields = None,
                 resume: bool | None = None, force_recipe_change: bool = False):
        self.cfg = cfg = config
        self.seed = cfg.seed if cfg.seed is not None else 0
        self.output_dir = Path(output_dir)
        for name, path in (("train.shards", cfg.shards), ("train.tokenizer", cfg.tokenizer)):
            if not Path(path).is_dir():
                raise FileNotFoundError(f"recipe field {name}: folder {path} does not exist")
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer)
        model_fields = _model_fields(model)
        self.model_config = model_config_from_recipe(model_fields, self.tokenizer)
        if cfg.seq_len > self.model_config.max_position_embeddings:
            raise ValueError(f"recipe field train.seq_len={cfg.seq_len} exceeds model.max_position_embeddings="
                             f"{self.model_config.max_position_embeddings}")
        self.resuming = _prepare_output_dir(self.output_dir, resume)

        self.accelerator = acc = make_accelerator(
            mixed_precision=_mixed_precision(cfg.mixed_precision),
            log_with=cfg.trackers() or None,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir),
                                                logging_dir=str(self.output_dir / "logs")),
        )
        self.grad_accum = acc.gradient_accumulation_steps = cfg.grad_accum_for(acc.num_processes)
        if acc.distributed_type == DistributedType.DEEPSPEED:
            # no dataloader is prepared, so DeepSpeed learns the batch layout from us
            acc.state.deepspeed_plugin.deepspeed_config.update(
                train_micro_batch_size_per_gpu=cfg.micro_batch_size, gradient_accumulation_steps=self.grad_accum,
                gradient_clipping=cfg.max_grad_norm)
        fingerprint = tokenizer_fingerprint(cfg.tokenizer)
        data_args = dict(seq_len=cfg.seq_len, micro_batch_size=cfg.micro_batch_size, rank=acc.process_index,
                         world_size=acc.num_processes, seed=self.seed, expected_fingerprint=fingerprint,
                         verify_checksums=cfg.verify_checksums)
        self.train_data = PretrainDataset(cfg.shards, split="train", grad_accum_steps=self.grad_accum, **data_args)
        val_tokens = self.train_data.manifest.get("splits", {}).get("val", {}).get("tokens", 0)
        self.val_data = None
        if val_tokens > cfg.seq_len:
            self.val_data = PretrainDataset(cfg.shards, split="val", grad_accum_steps=self.grad_accum, **data_args)
        else:
            logger.warning("%s has no val split of at least one %d-token window: no validation", cfg.shards,
                           cfg.seq_len + 1)
        self.max_time_s = cfg.max_time_s()
        self.poisoned = cfg.poison_range()

        # what the run records (RUN/recipe.yaml) and a resume is checked against: both sections, filled in
        self.recipe = {"model": {**model_fields, **{k: getattr(self.model_config, k) for k in
                                                    ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id")}},
                       "train": {**cfg.to_dict(), "seed": self.seed}}
        recorded = self.output_dir / "recipe.yaml"
        if self.resuming and recorded.is_file():
            for change in check_resume_recipe(load_recipe(recorded), self.recipe, str(recorded), force_recipe_change):
                logger.info("resuming with a changed recipe field: %s", change)
        set_seed(self.seed)
        model = FoundryForCausalLM(self.model_config)
        if cfg.gradient_checkpointing:  # recompute each layer's activations in backward: memory for compute
            model.activation_checkpointing_enable()
        self.flops_per_token = model.flops_per_token(cfg.seq_len)
        optimizers = build_optimizers(model, cfg, acc.distributed_type.value)
        if cfg.compile:  # in place (Module.compile): state-dict keys stay free of torch.compile's prefix
            model.compile()
        self.model, *self.optimizers = acc.prepare(model, *optimizers)
        self.spike = cfg.spike_settings(cfg.total_steps(self.train_data.tokens_per_step) or 1)
        self.state = RunState(self.train_data, SpikeDetector(self.spike))
        acc.register_for_checkpointing(self.state)
        self.checkpoints = CheckpointManager(self.output_dir / "checkpoints", acc, cfg.keep_last,
                                             tracked=[self.model, *self.optimizers, self.state])
        self.metrics = JsonlLog(self.output_dir / "metrics.jsonl")
        self.spikes = JsonlLog(self.output_dir / "spikes.jsonl")
        self.peak_flops = peak_flops(acc.device, cfg.peak_flops_per_device)
        self.last_val: dict = {}
        self.last_train_loss: float | None = None
        self.eval_s = self.checkpoint_s = 0.0  # the last validation's and checkpoint's wall clock
        self.plan_anchor = (0, 0.0)  # (step, train time) where this session's steps began
        self.plan_window = (0, 0.0)  # (step, train time) of the last plan check

    # ----------------------------------------------------------------------------------------- run
    def fit(self) -> dict:
        """Start or resume, plan the run, train step by step (rolling back spikes), then validate,
        checkpoint and export the model; returns the summary."""
        acc, cfg, state = self.accelerator, self.cfg, self.state
        self.session_started = time.perf_counter()  # elapsed_s counts from here; train_time_s spans sessions
        self._start_or_resume()
        progress = tqdm(total=state.total_steps, initial=state.step, disable=not acc.is_main_process,
                        desc="train", dynamic_ncols=True, mininterval=1.0)
        started, tokens_at_start = time.perf_counter(), state.tokens
        if self.max_time_s is not None:  # a plan measures this session's steps, not the setup before them
            state.plan_step = state.step
            self.plan_anchor = (state.step, self._slowest(state.train_time_s())[0])
            self.plan_window = self.plan_anchor
        while state.step < state.total_steps:
            faults.maybe_kill("step", state.step)
            faults.maybe_slow()
            record = self._train_step()
            if record is None:  # a spike: state rolled back, data skipped
                progress.n = state.step
                progress.refresh()
                continue
            progress.update(1)
            progress.set_postfix(self._postfix(record), refresh=False)
            step = state.step
            if step < state.total_steps:  # the final step's validation, samples and checkpoint come below
                if _due(step, cfg.eval_every):
                    self._validate()
                if _due(step, cfg.sample_every):
                    self._sample()
                if _due(step, cfg.checkpoint_every):
                    self._checkpoint()
            self.checkpoints.after_step(step)  # verdicts on restore points, memory snapshots
            if self._replan():
                progress.total = state.total_steps
        progress.close()
        wall = time.perf_counter() - started
        self._validate()
        self._sample()
        latest = self.checkpoints.latest()
        final = latest if latest is not None and latest.step == state.step else self._checkpoint()
        self._export_model()
        acc.end_training()
        self.metrics.close()
        self.spikes.close()
        summary = {
            "steps": state.step,
            "tokens": state.tokens,
            "final_train_loss": self.last_train_loss,
            "val_loss": self.last_val.get("val_loss"),
            "val_bpb": self.last_val.get("val_bpb"),
            "rollbacks": state.rollbacks,
            "tokens_per_s": (state.tokens - tokens_at_start) / wall if wall > 0 else None,
            "train_time_s": state.train_time_s(),
            "max_time_s": self.max_time_s,
            "checkpoint": str(final.path),
            "model_dir": str(self.output_dir / "model"),
        }
        logger.info("training done: %s", summary)
        return summary

    def _start_or_resume(self) -> None:
        """Load the newest checkpoint (or plan a fresh run), reset the logs to that step, start judging."""
        acc, cfg, state = self.accelerator, self.cfg, self.state
        plan = saved_plan(self.output_dir)
        if plan is not None:
            logger.info("%s", plan.explain())
        self.checkpoints.remove_incomplete()
        planned = cfg.total_steps(self.train_data.tokens_per_step)
        if planned is not None:
            state.total_steps, state.warmup_steps = planned, cfg.warmup_for(planned)
        if self.resuming:
            latest = self.checkpoints.latest()
            self.checkpoints.load(latest)
            logger.info("resumed from %s (step %d, %d tokens)", latest.path, state.step, state.tokens)
            if planned is not None:  # a step- or token-sized run follows the recipe (it may have been extended)
                state.total_steps, state.warmup_steps = planned, cfg.warmup_for(planned)
        elif self.max_time_s is not None:
            self._plan_from_probe()
        self.spike = cfg.spike_settings(state.total_steps)
        self.checkpoints.clean_after = self.spike.clean_after if self.spike.enabled else 0
        self.checkpoints.snapshot_every = self.spike.snapshot_every
        if acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            self.checkpoints.snapshot_every = 0  # a sharded state's host copy is not implemented: disk only
        self.checkpoints.start(state.step)
        if acc.is_main_process:
            for log in (self.metrics, self.spikes):
                log.truncate_after(state.step)  # records of steps the resumed run will replay
            self.metrics.append(run_record(acc, state.step))
            dump_recipe(self.recipe, self.output_dir / "recipe.yaml")
        acc.init_trackers("lmfoundry", config=_flat_config(self.recipe))
        logger.info(
            "training %.2fM parameters for %d steps (warmup %d): %d processes x %d micro-batches x %d sequences "
            "x %d tokens = %d tokens/step", self.num_parameters() / 1e6, state.total_steps, state.warmup_steps,
            acc.num_processes, self.grad_accum, cfg.micro_batch_size, cfg.seq_len, self.train_data.tokens_per_step)
        if acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            layout = parameter_layout(self.model)
            logger.info("%s: %d of %d parameter tensors sharded; rank 0 holds %d of %d parameters",
                        acc.distributed_type.value, layout["sharded_tensors"], layout["tensors"],
                        layout["local_numel"], layout["global_numel"])

    # ------------------------------------------------------------------------------ max_time plans
    def _plan_from_probe(self) -> None:
        """Time a few real steps (and one validation) from the initial state, restore that state
        exactly, and plan the steps that fit the budget; the probe's time counts against it."""
        state, cfg = self.state, self.cfg
        initial = self.checkpoints.snapshot(0)
        self._step_compute(0, 0, probe=True)  # the first step pays for lazy allocation: not timed
        self._optimizer_step()
        timed, began = 0, time.perf_counter()
        while timed < 3 or (timed < 20 and time.perf_counter() - began < 0.01 * self.max_time_s):
            self._step_compute(timed + 1, timed + 1, probe=True)
            self._optimizer_step()
            timed += 1
        step_s = (time.perf_counter() - began) / timed
        if self.val_data is not None:
            self._validate(record=False)
        started = time.perf_counter()  # the final checkpoint and export cost about one state save each
        with tempfile.TemporaryDirectory(dir=self.output_dir, prefix=".probe-") as folder:
            self.accelerator.save_state(folder)
        self.checkpoint_s = time.perf_counter() - started
        # every rank must plan the same steps: plan from the slowest rank's timings
        step_s, self.eval_s, self.checkpoint_s, spent = self._slowest(
            step_s, self.eval_s, self.checkpoint_s, state.train_time_s())
        self.checkpoints.restore(initial)
        self.checkpoints.snapshots.clear()
        state.restart_clock(spent)
        left = self.max_time_s - spent
        total = planned_steps(left, step_s, eval_s=self.eval_s, eval_every=cfg.eval_every,
                              checkpoint_s=self.checkpoint_s, checkpoint_every=cfg.checkpoint_every,
                              reserve_s=self._end_reserve_s())
        state.total_steps, state.warmup_steps = total, cfg.warmup_for(total)
        logger.info("max_time %s: a step takes %.3f s (%d probe steps), a validation %.2f s, a state save %.2f s; "
                    "%.0f s left -> %d steps", cfg.max_time, step_s, timed, self.eval_s, self.checkpoint_s, left, total)

    def _slowest(self, *seconds: float) -> list[float]:
        """Each value's maximum over all processes (timings differ by rank; plans must not)."""
        local = torch.tensor(seconds, dtype=torch.float64, device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            local = self.accelerator.gather(local.unsqueeze(0)).amax(dim=0)
        return local.tolist()

    def _end_reserve_s(self) -> float:
        """Time kept for the end of a max_time run: the final validation, checkpoint and export."""
        return self.eval_s + 2 * self.checkpoint_s

    def _replan(self) -> bool:
        """Refine a max_time plan from the measured cost of the recent steps (evals and checkpoints
        included), every 5% of the planned steps or of the time budget, whichever comes first, while the
        lr does not yet depend on the step count; True if changed.

        The time trigger matters when the machine slows down after the probe (another job takes the
        cores): a plan of thousands of steps at the probe's speed would otherwise be checked only after
        5% of those steps, too late to use the budget well."""
        state, cfg = self.state, self.cfg
        if self.max_time_s is None:
            return False
        due_by_steps = state.step - state.plan_step >= max(1, state.total_steps // 20)
        # the clock is reduced over ranks, so read it only every 0.5% of the steps, on every rank alike
        if not due_by_steps and state.step % max(1, state.total_steps // 200):
            return False
        if not _lr_is_flat(cfg, state.step, state.total_steps, state.warmup_steps):
            return False
        (now,) = self._slowest(state.train_time_s())  # the same on every rank, so is the new plan
        if not due_by_steps and now - self.plan_window[1] < 0.05 * self.max_time_s:
            return False
        # the cost per step since the last check (5% of the budget or of the steps), so the plan follows a
        # machine whose load changes; the session's average while that window holds under 10 steps
        anchor_step, anchor_time = self.plan_window if state.step - self.plan_window[0] >= 10 else self.plan_anchor
        if state.step <= anchor_step:  # a rollback went back to where this session began: nothing to measure yet
            return False
        per_step = (now - anchor_time) / (state.step - anchor_step)
        self.plan_window = (state.step, now)
        total = state.step + planned_steps(self.max_time_s - now, per_step, reserve_s=self._end_reserve_s())
        # a shorter run gets a shorter warmup (the ramp steepens); a longer one keeps the warmup it began
        warmup = min(state.warmup_steps, cfg.warmup_for(total))
        state.plan_step = state.step
        if total == state.total_steps or not _lr_is_flat(cfg, state.step, total, warmup):
            return False  # past the point where the new plan's decay would have begun: keep the old one
        # the clock checks it often; only a change worth reading (over 2%) reaches the log at INFO
        level = logging.INFO if abs(total - state.total_steps) > 0.02 * state.total_steps else logging.DEBUG
        logger.log(level, "max_time %s: %.3f s per step lately, %.0f s left -> %d steps (was %d), warmup %d",
                   cfg.max_time, per_step, self.max_time_s - now, total, state.total_steps, warmup)
        state.total_steps, state.warmup_steps = total, warmup
        return True

    # ----------------------------------------------------------------------------------------- steps
    def num_parameters(self) -> int:
        """Parameters of the whole model, also when FSDP or ZeRO-3 holds only a shard on this rank."""
        return parameter_layout(self.model)["global_numel"]

    def _lr(self, peak: float, step: int, data_step: int) -> float:
        """The lr at ``step`` of a parameter group whose peak is ``peak``, with the lowered lr after a
        rollback and the fault injection's factor (in this order, so a run's lrs stay bit for bit)."""
        state = self.state
        lr = lr_at(step, lr=peak, total_steps=state.total_steps, schedule=self.cfg.schedule,
                   warmup_steps=state.warmup_steps, min_lr_ratio=self.cfg.min_lr_ratio,
                   decay_fraction=self.cfg.decay_fraction)
        if step < state.lr_reduced_until:
            lr *= self.spike.lr_factor
        if data_step in self.poisoned:
            lr *= self.cfg.poison_lr_factor
        return lr

    def _step_compute(self, step: int, data_step: int, probe: bool = False) -> tuple[float, float | None]:
        """Forward and backward over the step's micro-batches and gradient clipping, with every
        optimizer's lr set (``probe``: a hundredth of it, for a step that will be undone); returns the
        loss and gradient norm reduced over processes. The optimizer step is left to the caller (a
        spike skips it)."""
        acc, cfg = self.accelerator, self.cfg
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self._lr(group["base_lr"], step, data_step) * (0.01 if probe else 1.0)
        self.model.train()
        loss_sum = torch.zeros((), device=acc.device)
        for micro_step in range(self.grad_accum):
            batch = self.train_data.get_batch(step, micro_step).to(acc.device, non_blocking=True)
            # accumulate(): gradients are all-reduced on the last micro-step only; backward() divides
            # the loss by grad_accum (DeepSpeed does both inside its engine)
            with acc.accumulate(self.model):
                loss = lm_loss(self.model, batch)
                acc.backward(loss)
            loss_sum += loss.detach()
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
        norm = acc.clip_grad_norm_(self.model.parameters(), max_norm)  # None: DeepSpeed clips in its step
        if hasattr(norm, "full_tensor"):  # FSDP2: a replicated DTensor, which gloo/NCCL cannot all-reduce
            norm = norm.full_tensor()
        # One reduction gives every rank the same numbers to decide on. Every micro-batch holds B*S
        # target tokens, so the mean of micro-batch means is the token-weighted global mean; the
        # norm of the synced gradients is already global, and a mean of equal values is exact.
        local = torch.stack([loss_sum / self.grad_accum,
                             torch.as_tensor(0.0 if norm is None else norm, dtype=loss_sum.dtype, device=acc.device)])
        step_loss, grad_norm = acc.reduce(local, "mean").tolist()
        return step_loss, None if norm is None else grad_norm

    def _optimizer_step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()
        self._zero_grad()

    def _zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    def _train_step(self) -> dict | None:
        """One optimizer step; returns its metrics record, or None when a spike rolled the run back."""
        acc, state = self.accelerator, self.state
        step = state.step
        data_step = step + self.train_data.skipped_steps
        started = time.perf_counter()
        step_loss, grad_norm = self._step_compute(step, data_step)
        verdict = Verdict(False)
        if self.spike.enabled:
            verdict = state.detector.check(step_loss, grad_norm, warming_up=step < state.warmup_steps)
        if verdict.is_spike:
            self._zero_grad()
            self._roll_back(step, data_step, step_loss, grad_norm, verdict)
            return None
        self._optimizer_step()
        state.detector.record(step_loss, grad_norm)
        state.step += 1
        state.tokens += self.train_data.tokens_per_step
        self.last_train_loss = step_loss
        now = time.perf_counter()
        tokens_per_s = self.train_data.tokens_per_step / (now - started)
        record = {
            "kind": "train", "step": state.step, "data_step": data_step, "loss": step_loss,
            "lr": self._lr(self.cfg.lr, step, data_step), "grad_norm": grad_norm, "tokens": state.tokens, "tokens_per_s": tokens_per_s,
            "mfu": mfu(self.flops_per_token, tokens_per_s, self.peak_flops, acc.num_processes),
            "zscore": verdict.zscore, "elapsed_s": now - self.session_started, "train_time_s": state.train_time_s(),
        }
        if self.cfg.optimizer == "muon":
            record["muon_lr"] = self._lr(self.cfg.muon_lr, step, data_step)
        if state.step % self.cfg.log_every == 0 or state.step == state.total_steps:
            self._log(record)
        return record

    def _roll_back(self, step: int, data_step: int, loss: float, grad_norm: float | None, verdict: Verdict) -> None:
        """Restore the newest clean restore point (disk checkpoint or memory snapshot), skip past the
        batches seen from it through the spike, lower the lr for a while, and rewrite the metrics so
        they hold one history: the abandoned branch's rows go, a ``rollback`` record marks the event.

        ``step`` is the 0-based index of the failed step; logs call it step ``step + 1`` like the
        metrics do (step N = the N-th optimizer step). Data steps are 0-based batch indices.
        """
        acc, spike, state = self.accelerator, self.spike, self.state
        rollbacks = state.rollbacks + 1
        if rollbacks > spike.max_rollbacks:
            raise TrainingDivergedError(
                f"loss spike at step {step + 1} (loss {loss:.4g}, grad norm {grad_norm}, {verdict.reason}) after "
                f"{spike.max_rollbacks} rollbacks already; stopping. Checkpoints are intact in "
                f"{self.checkpoints.root}; lower train.lr, raise train.spike_max_rollbacks or inspect spikes.jsonl")
        target = self.checkpoints.newest_clean()
        if target is None:
            # nothing clean to go back to (snapshots off, no checkpoint judged yet): the update was not
            # applied, so skip this batch and carry on
            restored_step, first = step, data_step
            self.train_data.skip(1)
            skipped = 1
        else:
            spent, plan = state.train_time_s(), (state.total_steps, state.warmup_steps, state.plan_step)
            self.checkpoints.restore(target)
            state.restart_clock(spent)  # the restore point's clock would forget the rolled-back work
            state.total_steps, state.warmup_steps, state.plan_step = plan  # and a max_time plan is kept
            self.checkpoints.abandon_after(target.step, rollbacks)
            # resume reading just past the spike (+ extra): this also skips batches an earlier rollback
            # to the same point had skipped, which the point's own data position predates
            restored_step, first = state.step, state.step + self.train_data.skipped_steps
            skipped = data_step + 1 + spike.skip_extra - first
            self.train_data.skip(skipped)
        state.rollbacks = rollbacks
        state.lr_reduced_until = state.step + spike.lr_steps
        event = {
            "step": step + 1, "data_step": data_step, "loss": loss, "grad_norm": grad_norm, "reason": verdict.reason,
            "zscore": verdict.zscore, "checkpoint_restored": target.label if target else None,
            "restored_step": restored_step, "skipped_data_steps": [first, first + skipped - 1],
            "batches_skipped": skipped, "rollback": rollbacks,
        }
        logger.warning(
            "loss spike at step %d (data step %d): loss %.4g, grad norm %s, %s%s; restored %s, skipped data "
            "steps %d-%d (%d batches), lr x%g for %d steps, rollback %d of at most %d", step + 1, data_step, loss,
            grad_norm, verdict.reason, f" z={verdict.zscore:.1f}" if verdict.zscore is not None else "",
            target.label if target else "nothing (no clean restore point)", first, first + skipped - 1, skipped,
            spike.lr_factor, spike.lr_steps, rollbacks, spike.max_rollbacks)
        if acc.is_main_process:
            self.spikes.append(event)
            # one history: rows of the abandoned steps go; session and rollback records stay
            self.metrics.truncate_after(restored_step, keep_kinds=("run", "rollback"))
            self.metrics.append({"kind": "rollback", **event, "spike_step": step + 1, "step": restored_step,
                                 "lr_factor": spike.lr_factor, "lr_steps": spike.lr_steps,
                                 "train_time_s": state.train_time_s()})
        acc.log({"train/spike_loss": loss, "train/rollbacks": rollbacks}, step=step + 1)

    # ------------------------------------------------------------------------------ side outputs
    def _log(self, record: dict) -> None:
        acc = self.accelerator
        if acc.is_main_process:
            self.metrics.append(record)
        scalars = {f"train/{k}": v for k, v in record.items()
                   if k not in ("kind", "step") and isinstance(v, (int, float))}
        acc.log(scalars, step=record["step"])

    def _postfix(self, record: dict) -> dict:
        postfix = {"loss": f"{record['loss']:.4f}", "lr": f"{record['lr']:.2e}",
                   "tok/s": f"{record['tokens_per_s']:,.0f}"}
        if record["mfu"] is not None:
            postfix["mfu"] = f"{100 * record['mfu']:.1f}%"
        return postfix

    def _validate(self, record: bool = True) -> None:
        """Val loss and bpb into ``last_val`` and the logs (``record=False``: only time it, for a plan)."""
        acc = self.accelerator
        if self.val_data is None:
            return
        started = time.perf_counter()
        self.last_val = validate(self.model, self.val_data, self.cfg.eval_batches, self.grad_accum, acc)
        self.eval_s = time.perf_counter() - started
        if not record:
            self.last_val = {}
            return
        record = {"kind": "val", "step": self.state.step, **self.last_val}
        logger.info("step %d: val loss %.4f, val bpb %.4f", self.state.step, record["val_loss"], record["val_bpb"])
        if acc.is_main_process:
            self.metrics.append(record)
        acc.log({"val/loss": record["val_loss"], "val/bpb": record["val_bpb"]}, step=self.state.step)

    def _sample(self) -> None:
        samples = sample(self.model, self.tokenizer, self.cfg.sample_prompts, self.cfg.sample_max_new_tokens,
                         self.accelerator)
        if samples:
            for item in samples:
                logger.info("sample at step %d: %r -> %r", self.state.step, item["prompt"], item["text"])
            self.metrics.append({"kind": "samples", "step": self.state.step, "samples": samples})

    def _checkpoint(self) -> Checkpoint:
        started = time.perf_counter()
        ckpt = self.checkpoints.save(self.state.step, {
            "tokens": self.state.tokens, "data_step": self.state.step + self.train_data.skipped_steps,
            "loss": self.last_train_loss, "val": self.last_val,
        })
        self._plot()
        self.checkpoint_s = time.perf_counter() - started
        return ckpt

    def _plot(self) -> None:
        if self.accelerator.is_main_process:
            plot_loss_curve(self.metrics.read(), self.spikes.read(), self.output_dir / "loss_curve.png",
                            title=f"{self.output_dir.name}: {self.num_parameters() / 1e6:.2f}M parameters")

    def _export_model(self) -> None:
        """``save_pretrained`` of the final weights plus the tokenizer into ``model/``, atomically."""
        acc = self.accelerator
        acc.wait_for_everyone()
        state_dict = acc.get_state_dict(self.model)  # gathers shards under FSDP / ZeRO-3 (all ranks)
        if acc.is_main_process:
            final = self.output_dir / "model"
            tmp = self.output_dir / ".tmp-model"
            if tmp.exists():
                shutil.rmtree(tmp)
            acc.unwrap_model(self.model).save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            self._plot()
            logger.info("final model saved to %s", final)
        acc.wait_for_everyone()


def train(config: TrainConfig, output_dir: str | Path, model: ModelFields = None, *, resume: bool | None = None,
          force_recipe_change: bool = False) -> dict:
    """Train a model on ``config.shards`` into ``output_dir``; returns a summary (steps, losses, paths).

    ``model``: the ``model`` recipe section (``FoundryConfig`` fields) or a ``FoundryConfig``; the
    vocabulary and special-token ids come from the tokenizer. A recipe's ``model: auto`` and
    ``run.seed`` are resolved before this, by :func:`~lmfoundry.training.sections.train_sections`.

    ``resume``: True requires a checkpoint to continue from, None continues when the run folder has
    one and starts fresh otherwise, False refuses a folder that already holds checkpoints. A resume
    whose ``model``/``train`` fields would change results is refused unless ``force_recipe_change``
    (:mod:`lmfoundry.training.recipe_check`). The folder is locked for the run
    (:func:`lmfoundry.locks.output_lock`): a second process on it stops at once.
    """
    # accelerate narrates every file it saves at INFO; the loop's own log says what matters
    logging.getLogger("accelerate").setLevel(max(logging.WARNING, logging.getLogger("accelerate").level))
    with output_lock(output_dir, "train", create=resume is not True):  # before the Trainer reads the folder
        trainer = Trainer(config, output_dir, model, resume, force_recipe_change)
        with _log_file(trainer.output_dir / "train.log", trainer.accelerator.is_main_process):
            return trainer.fit()


def _model_fields(model: ModelFields) -> dict[str, Any]:
    """The model section as plain fields; a ``FoundryConfig`` gives the ones it sets away from the defaults."""
    if isinstance(model, FoundryConfig):
        defaults = FoundryConfig().to_dict()
        return {k: v for k, v in model.to_dict().items()
                if k in defaults and k not in _CONFIG_METADATA and v != defaults[k]}
    return dict(model or {})


@contextlib.contextmanager
def _log_file(path: Path, enabled: bool) -> Iterator[None]:
    """Copy lmfoundry's log records (INFO and up) into the run folder for the length of the run."""
    if not enabled:
        yield
        return
    package_logger = logging.getLogger("lmfoundry")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    if package_logger.getEffectiveLevel() > logging.INFO:
        package_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
        handler.close()


__all__ = ["RunState", "Trainer", "TrainingDivergedError", "train"]
