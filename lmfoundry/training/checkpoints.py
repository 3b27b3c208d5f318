"""Checkpoints of the full training state, written atomically, pruned to the last few.

Layout under ``RUN/checkpoints/``::

    step-120/                 accelerator.save_state(): model, optimizer, RNG of every rank,
      COMPLETE                custom objects (step, data position, spike detector) + this marker
      CLEAN                   written later, once the run got past it without a loss spike
    .tmp-step-140/            a write in progress (or interrupted): never loaded, removed at start
    rolledback-1-step-160/    a checkpoint on a branch abandoned by a spike rollback (kept, not loaded)

A checkpoint is written into a temporary folder, the ``COMPLETE`` marker (JSON metadata) is added
last, and only then is the folder renamed to ``step-N``: a process killed at any point leaves either
the previous state or a complete checkpoint, never a half-written ``step-N``. Loading considers only
folders that carry the marker.

Between disk checkpoints (or with ``checkpoint_every: 0``) the manager keeps in-memory restore
points: CPU copies of the model, optimizer and loop state (:class:`Snapshot`), taken every
``snapshot_every`` steps when no checkpoint on disk is that recent, and one of the initial state, so
a spike rollback always has a clean state to return to. Disk checkpoints and snapshots share the
same verdict: a restore point is *clean* once the run got ``clean_after`` steps past it without a
spike (:meth:`CheckpointManager.after_step`); only clean points are rollback targets.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from lmfoundry.atomic import write_json_atomic
from lmfoundry.training import faults

logger = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
CLEAN = "CLEAN"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path

    @property
    def clean(self) -> bool:
        return (self.path / CLEAN).is_file()

    def metadata(self) -> dict:
        return json.loads((self.path / COMPLETE).read_text(encoding="utf-8"))

    @property
    def label(self) -> str:
        return str(self.path)


@dataclass(eq=False)
class Snapshot:
    """An in-memory restore point: host copies of every tracked object's state and of the RNGs."""

    step: int
    states: list[Any]
    rng: dict[str, Any]
    clean: bool = False

    @property
    def label(self) -> str:
        return f"memory snapshot of step {self.step}"


RestorePoint = Checkpoint | Snapshot


def _host_copy(value: Any) -> Any:
    """A deep copy of a state dict with every tensor copied to host memory (no aliasing)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _host_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_host_copy(v) for v in value)
    return value


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_mode(path: Path) -> str:
    """How ``save_state`` laid the model out in a checkpoint: FSDP (sharded DCP), DEEPSPEED or plain.

    Under FSDP the model and optimizer are DCP folders (``pytorch_model_fsdp_0/``, ``optimizer_0/``)
    that reshard to any number of FSDP processes; DeepSpeed writes its engine folder
    (``pytorch_model/``, one optimizer partition per rank); DDP and one process write whole files.
    """
    if (path / "pytorch_model_fsdp_0").is_dir():
        return "FSDP"
    if (path / "pytorch_model").is_dir():
        return "DEEPSPEED"
    return "plain"


def running_mode(distributed_type: DistributedType) -> str:
    """The checkpoint layout ``save_state`` writes under ``distributed_type`` (see :func:`checkpoint_mode`)."""
    return {DistributedType.FSDP: "FSDP", DistributedType.DEEPSPEED: "DEEPSPEED"}.get(distributed_type, "plain")


def fsdp_to_plain(source: Path, target: Path, accelerator: Accelerator, model: torch.nn.Module,
                  optimizer: torch.optim.Optimizer) -> None:
    """Rewrite an FSDP checkpoint (sharded DCP) as the whole-file layout DDP / one process loads.

    ``model`` and ``optimizer`` are the run's prepared ones (what ``load_state`` will fill; accelerate
    has no public list of what it prepared). The DCP folders are read without a process group
    (``dcp_to_torch_save``); the model's keys are matched to the prepared model's (``module.`` under
    DDP) and the optimizer state, keyed by parameter name in DCP, is re-keyed by the optimizer's
    parameter order. RNG states and the loop's own state are copied as they are, so the resumed run
    continues exactly.
    """
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    dcp_to_torch_save(source / "pytorch_model_fsdp_0", target / "model.dcp.pt")
    dcp_to_torch_save(source / "optimizer_0", target / "optimizer.dcp.pt")
    weights = torch.load(target / "model.dcp.pt", weights_only=False)["model"]
    optim = torch.load(target / "optimizer.dcp.pt", weights_only=False)["optimizer"]
    torch.save({key: weights[key.removeprefix("module.")] for key in model.state_dict()}, target / "pytorch_model.bin")
    names = {id(p): name for name, p in accelerator.unwrap_model(model).named_parameters()}
    state, groups, index = {}, [], 0
    for group in optimizer.param_groups:
        ids = []
        for param in group["params"]:
            if names[id(param)] in optim["state"]:
                state[index] = optim["state"][names[id(param)]]
            ids.append(index)
            index += 1
        saved = next(g for g in optim["param_groups"] if names[id(group["params"][0])] in g["params"])
        groups.append({**{k: v for k, v in saved.items() if k != "params"}, "params": ids})
    torch.save({"state": state, "param_groups": groups}, target / "optimizer.bin")
    for name in ("model.dcp.pt", "optimizer.dcp.pt"):
        (target / name).unlink()
    for extra in source.iterdir():
        if extra.is_file() and extra.suffix == ".pkl":
            shutil.copy2(extra, target / extra.name)
    logger.info("converted the FSDP checkpoint %s to the whole-file layout for this %s run",
                source, accelerator.distributed_type.value)


def check_mode(path: Path, distributed_type: DistributedType) -> None:
    """Refuse to resume a checkpoint the current parallelism cannot read, saying how to proceed.

    accelerate's ``load_state`` would otherwise fail with a missing-file error
    (``No such file .../pytorch_model.bin``) that does not say the checkpoint is fine.
    """
    saved = checkpoint_mode(path)
    running = running_mode(distributed_type)
    if saved == running:
        return
    how = {"FSDP": "FSDP (lmfoundry/recipes/accelerate/fsdp.yaml) on any number of processes: DCP reshards",
           "DEEPSPEED": "the deepspeed_zero*.yaml config it was written with, on as many processes as then",
           "plain": "DDP or one process (ddp.yaml, or no accelerate config), on any number of processes"}
    raise ValueError(
        f"checkpoint {path} was written under {saved} and this run is {distributed_type.value}, which cannot "
        f"read it: resume it under {how[saved]}; or start a new run from its weights in the run's model/ "
        f"folder (plain safetensors, which every mode loads)")


class CheckpointManager:
    """Saves, finds, marks and prunes the checkpoints of one run (all processes call every method)."""

    def __init__(self, root: Path, accelerator: Accelerator, keep_last: int = 3, *, clean_after: int = 1,
                 snapshot_every: int = 0, tracked: Sequence[Any] = ()):
        """``tracked``: the objects a :class:`Snapshot` copies (``state_dict``/``load_state_dict``:
        the prepared model, its optimizer(s), the loop state), the same ones ``save_state`` writes."""
        self.root = Path(root)
        self.accelerator = accelerator
        self.keep_last = keep_last
        self.clean_after = clean_after
        self.snapshot_every = snapshot_every
        self.tracked = list(tracked)
        self.snapshots: list[Snapshot] = []
        self._disk_pending: list[Checkpoint] | None = None  # None: read from the folder when next needed

    def _model_and_optimizer(self) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """The prepared model and its (first) optimizer among ``tracked``, in ``prepare``'s order: the ones
        ``save_state`` writes as ``pytorch_model.bin`` and ``optimizer.bin``."""
        models = [obj for obj in self.tracked if isinstance(obj, torch.nn.Module)]
        optimizers = [obj for obj in self.tracked if isinstance(obj, torch.optim.Optimizer)]
        if not models or not optimizers:
            raise ValueError("CheckpointManager(tracked=...) must list the prepared model and optimizer to "
                             "convert an FSDP checkpoint for a run without FSDP")
        return models[0], optimizers[0]

    def complete(self) -> list[Checkpoint]:
        """Checkpoints whose write finished, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            match = _STEP_DIR.match(entry.name)
            if match and (entry / COMPLETE).is_file():
                found.append(Checkpoint(int(match.group(1)), entry))
        return sorted(found, key=lambda c: c.step)

    def latest(self) -> Checkpoint | None:
        done = self.complete()
        return done[-1] if done else None

    def newest_clean(self) -> RestorePoint | None:
        """The newest clean restore point, on disk or in memory (memory wins a tie: faster to load)."""
        clean: list[RestorePoint] = [c for c in self.complete() if c.clean]
        clean += [s for s in self.snapshots if s.clean]
        return max(clean, key=lambda p: (p.step, isinstance(p, Snapshot)), default=None)

    # ---------------------------------------------------------------- verdicts and memory snapshots
    def start(self, step: int) -> None:
        """Begin judging at ``step`` (0 or the resumed step): a fresh run keeps its initial state in
        memory as a clean restore point; checkpoints without a verdict wait for one."""
        self._disk_pending = None
        self.snapshots = []
        if self.snapshot_every > 0 and step == 0:
            self.snapshot(0).clean = True  # nothing came before the initial state that could have spiked

    def after_step(self, step: int) -> None:
        """After a completed step (and its checkpoint, if one was due): mark restore points clean that
        the run got ``clean_after`` steps past, and take a snapshot when none is recent enough."""
        if self._disk_pending is None:
            # Every rank must see the same list (mark_clean is collective): read the folder after the main
            # process's last write, and let no one write a CLEAN marker before every rank has read it.
            self.accelerator.wait_for_everyone()
            self._disk_pending = [c for c in self.complete() if not c.clean]
            self.accelerator.wait_for_everyone()
        for ckpt in [c for c in self._disk_pending if c.step + self.clean_after <= step]:
            self.mark_clean(ckpt)
            self._disk_pending.remove(ckpt)
        for snap in self.snapshots:
            snap.clean = snap.clean or snap.step + self.clean_after <= step
        self._prune_snapshots()
        if self.snapshot_every > 0:
            latest = self.latest()
            newest = max([latest.step if latest else -1, *(s.step for s in self.snapshots)])
            if step - newest >= self.snapshot_every:
                self.snapshot(step)

    def snapshot(self, step: int) -> Snapshot:
        """Copy the tracked state to host memory; keeps the newest clean snapshot and those awaiting
        a verdict, and none older than the newest clean disk checkpoint."""
        snap = Snapshot(step, [_host_copy(obj.state_dict()) for obj in self.tracked], _rng_state())
        self.snapshots.append(snap)
        self._prune_snapshots()
        return snap

    def _prune_snapshots(self) -> None:
        if not self.snapshots:
            return
        clean = [s for s in self.snapshots if s.clean]
        disk = [c for c in self.complete() if c.clean]
        newest_clean = clean[-1] if clean and (not disk or clean[-1].step > disk[-1].step) else None
        self.snapshots = [s for s in self.snapshots if not s.clean or s is newest_clean]

    def restore(self, point: RestorePoint) -> None:
        """Load a restore point: a disk checkpoint through accelerate, a snapshot from memory."""
        if isinstance(point, Checkpoint):
            self.load(point)
            return
        for obj, state in zip(self.tracked, point.states, strict=True):
            obj.load_state_dict(_host_copy(state))  # a copy: the snapshot may be restored again
        _set_rng_state(point.rng)

    def _state_bytes(self) -> int:
        """About what a checkpoint writes: every tensor the tracked objects hold (model and optimizer state)."""
        total = 0
        for obj in self.tracked:
            stack = [obj.state_dict()] if hasattr(obj, "state_dict") else []
            while stack:
                item = stack.pop()
                if isinstance(item, torch.Tensor):
                    total += item.numel() * item.element_size()
                elif isinstance(item, dict):
                    stack.extend(item.values())
                elif isinstance(item, list | tuple):
                    stack.extend(item)
        return total

    def remove_incomplete(self) -> None:
        """Delete leftovers of interrupted writes (temporary folders, ``step-N`` without marker)."""
        if self.accelerator.is_main_process and self.root.is_dir():
            for entry in self.root.iterdir():
                stale = entry.name.startswith((".tmp-", ".converted-")) or (
                    _STEP_DIR.match(entry.name) and not (entry / COMPLETE).is_file()
                )
                if stale and entry.is_dir():
                    logger.warning("removing incomplete checkpoint %s (its write was interrupted)", entry)
                    shutil.rmtree(entry)
        self.accelerator.wait_for_everyone()

    def save(self, step: int, metadata: dict) -> Checkpoint:
        """Write the full accelerator state for ``step``; atomic, then prune old checkpoints."""
        self._disk_pending = None
        tmp = self.root / f".tmp-step-{step}"
        final = self.root / f"step-{step}"
        if self.accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
        self.accelerator.wait_for_everyone()
        try:
            self.accelerator.save_state(str(tmp))
        except (OSError, RuntimeError) as err:
            if self.accelerator.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)  # a half-written checkpoint only takes the space
            raise _disk_full(err, tmp, self._state_bytes()) from err
        self.accelerator.wait_for_everyone()
        faults.maybe_kill("checkpoint", step)
        if self.accelerator.is_main_process:
            write_json_atomic(tmp / COMPLETE, {"step": step, **metadata})
            if final.exists():  # a re-save of the same step (e.g. the final step after a resume)
                shutil.rmtree(final)
            os.replace(tmp, final)
            self._prune()
            logger.info("saved checkpoint %s", final)
        self.accelerator.wait_for_everyone()
        return Checkpoint(step, final)

    def load(self, checkpoint: Checkpoint) -> dict:
        """Restore the accelerator state (model, optimizer, RNG, custom objects); returns the metadata."""
        acc = self.accelerator
        if checkpoint_mode(checkpoint.path) == "FSDP" and running_mode(acc.distributed_type) == "plain":
            converted = self.root / f".converted-step-{checkpoint.step}"
            if acc.is_main_process:
                fsdp_to_plain(checkpoint.path, converted, acc, *self._model_and_optimizer())
            acc.wait_for_everyone()
            acc.load_state(str(converted))
            acc.wait_for_everyone()
            if acc.is_main_process:
                shutil.rmtree(converted)
        else:
            check_mode(checkpoint.path, acc.distributed_type)
            try:
                acc.load_state(str(checkpoint.path))
            except RuntimeError as err:
                if "size mismatch" not in str(err):
                    raise
                first = next(line.strip() for line in str(err).splitlines() if "size mismatch" in line)
                raise ValueError(f"{checkpoint.path}: the checkpoint does not fit this model ({first}) (expected the "
                                 "model section it was saved with)") from None
        # load_state restores accelerate's micro-batch counter, which decides the gradient-sync
        # micro-step of accumulate(). It counts the saving run's micro-batches: resumed on another
        # number of processes (2 x 1 -> 1 x 2 from an odd step) it would sync on the wrong one and
        # drop half the gradient. Checkpoints fall between optimizer steps, so the phase is 0.
        self.accelerator.step = 0
        return checkpoint.metadata()

    def mark_clean(self, checkpoint: Checkpoint) -> None:
        if self.accelerator.is_main_process and checkpoint.path.is_dir() and not checkpoint.clean:
            (checkpoint.path / CLEAN).write_text("no loss spike followed this checkpoint\n", encoding="utf-8")
        self.accelerator.wait_for_everyone()

    def abandon_after(self, step: int, rollback_index: int) -> list[Path]:
        """Rename checkpoints newer than ``step`` (a branch a rollback left) so they are never resumed;
        drop the snapshots of that branch."""
        self.snapshots = [s for s in self.snapshots if s.step <= step]
        self._disk_pending = None
        moved = []
        if self.accelerator.is_main_process:
            for ckpt in self.complete():
                if ckpt.step > step:
                    target = self.root / f"rolledback-{rollback_index}-step-{ckpt.step}"
                    copy = 1
                    while target.exists():  # same index again after a resume from an earlier checkpoint
                        target = self.root / f"rolledback-{rollback_index}-step-{ckpt.step}.{copy}"
                        copy += 1
                    os.replace(ckpt.path, target)
                    moved.append(target)
        self.accelerator.wait_for_everyone()
        return moved

    def _prune(self) -> None:
        """Keep the last ``keep_last`` checkpoints, the newest clean one (the rollback target) and
        every newer one still awaiting its verdict (it may become the next rollback target)."""
        done = self.complete()
        keep = {c.path for c in done[-self.keep_last :]}
        clean = [c for c in done if c.clean]
        newest_clean_step = clean[-1].step if clean else -1
        keep.update(c.path for c in done if c.step >= newest_clean_step)
        for ckpt in done:
            if ckpt.path not in keep:
                shutil.rmtree(ckpt.path)


def _disk_full(err: BaseException, path: Path, needed: int) -> BaseException:
    """torch's zip writer reports a full disk as ``[enforce fail ...] unexpected pos``: name it, and the size.

    The checkpoint is written beside the earlier ones and renamed only when whole, so they stay usable.
    """
    full = isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
    if not full and "unexpected pos" not in str(err) and "No space left" not in str(err):
        return err
    free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
    return OSError(errno.ENOSPC, f"no space left on device (needed about {needed / 1e6:.0f} MB, "
                                 f"{free / 1e6:.0f} MB free; the earlier checkpoints are intact)", str(path))
