"""What a training session runs on: the Accelerator it asked for, and the record of what it got.

:func:`make_accelerator` builds the Accelerator and refuses a run that would silently get a
different parallelism from the one ``accelerate launch`` was configured for (accelerate 1.15 runs
an FSDP or DeepSpeed config as plain DDP on CPU, and ``--cpu --num_processes 2`` as one process).
On CPU it switches accelerate's own FSDP2 plugin on, so the sharded path the GPUs take is the one
the tests run over gloo.

:func:`run_record` is the ``kind: "run"`` record of ``metrics.jsonl``. The model card's hardware and software rows come from this record, so a run folder says what it
was trained on without any tracker. The card is public: nothing here names the machine or the
person (no hostname, username or path), only the device model, the process count, the precision
and library versions.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import accelerate
import torch
import transformers
from accelerate import Accelerator, FullyShardedDataParallelPlugin
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType, InitProcessGroupKwargs

from lmfoundry.version import __version__


class LaunchMismatchError(ValueError):
    """The launch configuration asked for one kind of run and this process would get another."""


def _env_true(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() in ("1", "true", "yes")


def requested_parallelism() -> str:
    """What ``accelerate launch`` was configured for: ``FSDP``, ``DEEPSPEED``, or ``DATA_PARALLEL``."""
    if _env_true("ACCELERATE_USE_FSDP"):
        return "FSDP"
    if _env_true("ACCELERATE_USE_DEEPSPEED"):
        return "DEEPSPEED"
    return "DATA_PARALLEL"


def launched_world_size() -> int | None:
    """The number of processes the launcher started (torchrun, MPI), or None when it says nothing."""
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return None


def make_accelerator(**kwargs: Any) -> Accelerator:
    """An Accelerator with the parallelism the launch asked for, or a :class:`LaunchMismatchError`.

    On CPU, accelerate 1.15 turns an FSDP config into plain multi-process DDP (it promotes to FSDP
    only from GPU-like device types). Here the same ``FullyShardedDataParallelPlugin`` accelerate
    builds from the launch's ``FSDP_*`` variables is installed on the gloo process group instead,
    so ``prepare``, ``clip_grad_norm_``, ``save_state`` and ``get_state_dict`` take accelerate's FSDP2
    code paths exactly as on GPUs (rather than a separate ``fully_shard`` path of ours that the GPU
    runs would never exercise).
    """
    asked = requested_parallelism()
    if asked == "DEEPSPEED" and not _env_true("ACCELERATE_USE_CPU") and not _has_gpu_like_device():
        # DeepSpeed's CPU accelerator: without a backend accelerate records 1 process while
        # DeepSpeed joins all of them, and ZeRO's batch check fails (8 != 4 * 2 * 2)
        kwargs["kwargs_handlers"] = [*kwargs.get("kwargs_handlers", []), InitProcessGroupKwargs(backend="gloo")]
    acc = Accelerator(**kwargs)
    if asked == "FSDP" and acc.distributed_type == DistributedType.MULTI_CPU:
        _enable_fsdp_on_cpu(acc)
    check_launch(acc, asked)
    return acc


def _has_gpu_like_device() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def _enable_fsdp_on_cpu(acc: Accelerator) -> None:
    plugin = FullyShardedDataParallelPlugin()  # reads FSDP_VERSION, FSDP_STATE_DICT_TYPE, ... like accelerate
    if acc.mixed_precision != "no":
        plugin.set_mixed_precision(acc.mixed_precision)
    state = AcceleratorState()
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    PartialState().distributed_type = DistributedType.FSDP  # the process-wide state (shared by every instance)


def check_launch(acc: Accelerator, asked: str) -> None:
    """Stop before training when the run would differ from what the launch asked for.

    The message says what was asked, what would run and why, so nobody discovers after a day of
    training that the "FSDP" run replicated the model on every GPU, or that two processes were one.
    """
    got = acc.distributed_type
    world = launched_world_size()
    if world is not None and world != acc.num_processes:
        raise LaunchMismatchError(
            f"the launcher started {world} processes (WORLD_SIZE={world}) but accelerate joined "
            f"{acc.num_processes} ({got.value}): each process would train alone as rank "
            f"{acc.process_index}. On CPU launch with ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu "
            f"--num_processes {world}; on GPUs check that every process sees a device")
    if (world is None and _env_true("ACCELERATE_USE_CPU") and os.environ.get("MASTER_ADDR")
            and os.environ.get("LOCAL_RANK") is None and acc.num_processes == 1):
        raise LaunchMismatchError(
            "accelerate launch --cpu was given a multi-process setup (MASTER_ADDR is set) but its simple "
            "launcher started this one process only: launch with ACCELERATE_USE_CPU=1 accelerate launch "
            "--multi_gpu --num_processes N instead")
    wanted = {"FSDP": DistributedType.FSDP, "DEEPSPEED": DistributedType.DEEPSPEED}.get(asked)
    if wanted is not None and got != wanted:
        why = ("accelerate enables DeepSpeed only when the process is not forced onto the CPU "
               "(unset ACCELERATE_USE_CPU / use_cpu; DeepSpeed's own CPU accelerator then runs it)"
               if asked == "DEEPSPEED" else
               f"accelerate promotes FSDP only from a multi-device launch, and this one is {got.value} "
               "(launch it with accelerate launch, even for one process)")
        raise LaunchMismatchError(
            f"the accelerate config asked for {asked} but this run would be {got.value} on "
            f"{acc.num_processes} process(es): {why}")


def parameter_layout(model: torch.nn.Module) -> dict[str, Any]:
    """How the prepared model's parameters are held on this rank: sharded (DTensor) or whole.

    ``local_numel`` counts this rank's share, ``global_numel`` the model's; under FSDP2 the former is
    about ``global / world``. Logged at the start of a run so the sharding is visible, not assumed.
    """
    from torch.distributed.tensor import DTensor

    params = list(model.parameters())
    sharded = sum(isinstance(p, DTensor) for p in params)
    local = total = 0
    for p in params:
        if isinstance(p, DTensor):
            local, total = local + p.to_local().numel(), total + p.numel()
        elif hasattr(p, "ds_numel"):  # ZeRO-3: p is an empty placeholder, its partition is ds_tensor
            sharded += 1
            local, total = local + p.ds_tensor.numel(), total + p.ds_numel
        else:
            local, total = local + p.numel(), total + p.numel()
    return {"tensors": len(params), "sharded_tensors": sharded, "local_numel": local, "global_numel": total}


def run_record(accelerator: Accelerator, step: int) -> dict[str, Any]:
    """The record written when a session starts at ``step`` (0: a fresh run, else a resume)."""
    return {
        "kind": "run",
        "step": step,
        "resumed": step > 0,
        "device_type": accelerator.device.type,
        "device_name": device_name(accelerator.device),
        "num_processes": accelerator.num_processes,
        "distributed_type": accelerator.distributed_type.value,
        "mixed_precision": accelerator.mixed_precision,
        "versions": library_versions(),
    }


def device_name(device: torch.device) -> str:
    """The model of the main process's device: the GPU's name, or the CPU's."""
    if device.type == "cpu":
        return cpu_name()
    get_name = getattr(getattr(torch, device.type, None), "get_device_name", None)  # cuda, xpu, ...
    return get_name(device) if get_name is not None else device.type


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "lmfoundry": __version__,
    }
