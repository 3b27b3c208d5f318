"""The datatrove executor a data stage runs on: local processes by default, Slurm or Ray for clusters.

Curation and tokenization both build their pipelines as datatrove steps and hand them here, so one
recipe setting (``executor``, ``workers``, ``tasks``, ``executor_options``) scales either stage out
the same way, and every task leaves a completion marker under ``logging_dir`` that a rerun skips.

:func:`run_stages` runs a stage's executors and reports the outcome honestly (datatrove itself
logs a failed task and returns as if all went well):

- every task finished: the stage is complete;
- Slurm only: the job arrays were submitted (dependent, ``afterok``) and the call returns; their ids
  are recorded in each stage's ``LOGS/slurm_jobs.json``. A rerun while any of them is still queued
  or running is refused, naming them; a rerun after they ended completes the stage or reports the
  failed tasks;
- a task failed (locally, on Ray, or in an ended Slurm job): :class:`TaskFailedError` naming the
  task's log, and no later stage runs (on Slurm, ``--kill-on-invalid-dep=yes`` cancels the jobs
  that depended on it).

Requests the cluster cannot satisfy fail before anything is submitted (:class:`ClusterRequestError`):
Slurm without ``partition`` and ``time``, an unknown partition, ``cpus_per_task`` or memory
beyond every node's (Slurm) or the Ray cluster's, where datatrove would wait forever.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

from lmfoundry.errors import StageFailedError

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "slurm", "ray")
SLURM_JOBS = "slurm_jobs.json"
DEFAULT_CPUS_PER_TASK = 1  # datatrove's defaults, for both cluster executors
DEFAULT_MEM_PER_CPU_GB = 2


class ClusterRequestError(ValueError):
    """The executor options ask for something the cluster cannot run; nothing was submitted."""


class TaskFailedError(StageFailedError):
    """A task of a stage ended without finishing; later stages were not started."""


def make_executor(
    kind: str,
    pipeline: list,
    *,
    tasks: int,
    workers: int,
    logging_dir: Path,
    options: dict[str, Any] | None = None,
    depends=None,
    parallel: bool = True,
    preload: tuple[str, ...] = (),
):
    """A datatrove executor of ``kind`` running ``pipeline`` as ``tasks`` tasks.

    ``options`` go to the executor's constructor as they are (Slurm: ``partition`` and ``time`` are
    required, ``cpus_per_task``, ``mem_per_cpu_gb``, ``sbatch_args``, ...; Ray: ``cpus_per_task``, ...).
    Locally, ``workers`` processes run at once, forked from one server that has imported the
    ``preload`` modules once; ``parallel=False`` runs the tasks one after another in this process,
    which for light stages is faster than starting workers (each imports lmfoundry, torch included).
    """
    if kind not in EXECUTORS:
        raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {kind!r}")
    options = dict(options or {})
    if kind == "slurm":
        from datatrove.executor.slurm import SlurmPipelineExecutor

        check_slurm_request(options)
        # a failed task must not leave the stages after it pending forever on an afterok dependency
        options["sbatch_args"] = {"kill-on-invalid-dep": "yes", **options.get("sbatch_args", {})}
        return SlurmPipelineExecutor(
            pipeline=pipeline, tasks=tasks, logging_dir=str(logging_dir), depends=depends, **options
        )
    if kind == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

        check_ray_request(options)
        return RayPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logging_dir), **options
        )
    import multiprocess
    from datatrove.executor.local import LocalPipelineExecutor

    multiprocess.set_forkserver_preload(list(preload))
    return LocalPipelineExecutor(
        pipeline=pipeline,
        tasks=tasks,
        workers=min(workers, tasks) if parallel else 1,
        logging_dir=str(logging_dir),
        skip_completed=True,
        **options,
    )


def run_stages(kind: str, stages: list[tuple[str, Any]]) -> bool:
    """Run ``(name, executor)`` stages in order; True when every task finished, False when submitted.

    Raises :class:`TaskFailedError` for a failed task (naming its log) before a later stage starts,
    and :class:`ClusterRequestError` for a Slurm rerun while the recorded jobs are still queued.
    """
    if kind == "slurm":
        return _run_slurm_stages(stages)
    for name, executor in stages:
        logger.info("stage %s: %d task(s) on %s", name, executor.world_size, kind)
        executor.run()
        failed = executor.get_incomplete_ranks()
        if failed:
            raise TaskFailedError(_failure_message(name, executor, failed, kind))
    return True


# ------------------------------------------------------------------------------------------- Slurm
def check_slurm_request(options: dict[str, Any]) -> None:
    """Refuse, before any submission, Slurm options that are missing or larger than every node."""
    missing = [name for name in ("partition", "time") if not options.get(name)]
    if missing:
        raise ClusterRequestError(
            f"executor_options for executor 'slurm' need {' and '.join(missing)} (e.g. "
            "{partition: cpu, time: \"04:00:00\"}; `sinfo -s` lists the partitions and their time limits)")
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        raise ClusterRequestError("executor 'slurm': sbatch/sinfo not found on PATH (run on a Slurm login node)")
    result = subprocess.run(["sinfo", "-h", "-N", "-o", "%P %c %m"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterRequestError(f"executor 'slurm': sinfo failed: {result.stderr.strip() or result.returncode}")
    nodes = []
    for line in result.stdout.splitlines():
        partition, cpus, memory = line.split()
        nodes.append((partition.rstrip("*"), int(cpus.rstrip("+")), int(memory.rstrip("+"))))
    partition = str(options["partition"])
    in_partition = [(c, m) for p, c, m in nodes if p == partition]
    if not in_partition:
        known = ", ".join(sorted({p for p, _, _ in nodes})) or "none"
        raise ClusterRequestError(f"executor_options.partition: {partition!r} is not a partition of this cluster "
                                  f"(sinfo lists: {known})")
    cpus = int(options.get("cpus_per_task", DEFAULT_CPUS_PER_TASK))
    memory_mb = cpus * float(options.get("mem_per_cpu_gb", DEFAULT_MEM_PER_CPU_GB)) * 1024
    if not any(c >= cpus and m >= memory_mb for c, m in in_partition):
        biggest = max(in_partition)
        raise ClusterRequestError(
            f"executor_options: a task asks for {cpus} CPU(s) and {memory_mb:.0f} MB (cpus_per_task x "
            f"mem_per_cpu_gb) but the largest node of partition {partition!r} has {biggest[0]} CPU(s) and "
            f"{biggest[1]} MB: the jobs would never start. Lower cpus_per_task or mem_per_cpu_gb")


def _queued_jobs() -> set[str]:
    """Ids of the array jobs Slurm still holds (pending, running, completing)."""
    result = subprocess.run(["squeue", "-h", "-o", "%F"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterRequestError(f"executor 'slurm': squeue failed: {result.stderr.strip() or result.returncode}")
    return {line.strip() for line in result.stdout.splitlines() if line.strip()}


def _recorded_job(executor) -> str | None:
    path = Path(executor.logging_dir.path) / SLURM_JOBS
    if not path.is_file():
        return None
    return str(json.loads(path.read_text(encoding="utf-8"))["job_id"])


def _run_slurm_stages(stages: list[tuple[str, Any]]) -> bool:
    recorded = {name: _recorded_job(executor) for name, executor in stages}
    queued = _queued_jobs()
    waiting = [f"{job} ({name})" for name, job in recorded.items() if job is not None and job in queued]
    if waiting:
        raise ClusterRequestError(
            f"the Slurm jobs of the previous submission are still queued or running: {', '.join(waiting)}; "
            "rerun once they finish (squeue shows them), or scancel them first")
    for name, executor in stages:
        failed = executor.get_incomplete_ranks()
        if failed and recorded[name] is not None:  # its jobs ran and ended, yet tasks did not finish
            for _, later in stages:
                (Path(later.logging_dir.path) / SLURM_JOBS).unlink(missing_ok=True)  # the next run resubmits
            raise TaskFailedError(_failure_message(name, executor, failed, "slurm", recorded[name]))
    pending = False
    for name, executor in stages:
        logger.info("stage %s: %d task(s) on slurm", name, executor.world_size)
        executor.run()  # submits the array (after its dependency) unless every task is done
        job = getattr(executor, "job_id", None)
        if job not in (None, -1):
            path = Path(executor.logging_dir.path) / SLURM_JOBS
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"job_id": str(job), "stage": name}) + "\n", encoding="utf-8")
            logger.info("stage %s: submitted Slurm job array %s", name, job)
            pending = True
    return not pending


# ---------------------------------------------------------------------------------------------- Ray
def check_ray_request(options: dict[str, Any]) -> None:
    """Refuse a Ray request no node can hold (datatrove would wait for it forever)."""
    import ray

    if not ray.is_initialized():
        ray.init(log_to_driver=False)  # RAY_ADDRESS, else the cluster `ray start` left here, else a local one
    cpus = float(options.get("cpus_per_task", DEFAULT_CPUS_PER_TASK))
    memory = cpus * float(options.get("mem_per_cpu_gb", DEFAULT_MEM_PER_CPU_GB)) * 2**30
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if not any(r.get("CPU", 0) >= cpus and r.get("memory", 0) >= memory for r in nodes):
        biggest = max(nodes, key=lambda r: r.get("CPU", 0), default={})
        raise ClusterRequestError(
            f"executor_options: a task asks for {cpus:g} CPU(s) and {memory / 2**30:.1f} GiB (cpus_per_task x "
            f"mem_per_cpu_gb) but the largest Ray node has {biggest.get('CPU', 0):g} CPU(s) and "
            f"{biggest.get('memory', 0) / 2**30:.1f} GiB: the tasks would never be scheduled")


# ------------------------------------------------------------------------------------------ failures
def _failure_message(name: str, executor, failed: list[int], kind: str, job: str | None = None) -> str:
    logs = Path(executor.logging_dir.path)
    first = logs / "logs" / f"task_{failed[0]:05d}.log"
    where = f" (Slurm job {job}; its output in {logs / 'slurm_logs'})" if job else ""
    last = ""
    if first.is_file():
        lines = [line for line in first.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        last = f"; its last line: {lines[-1].strip()[:300]}" if lines else ""
    ranks = ", ".join(str(r) for r in failed[:10]) + (" ..." if len(failed) > 10 else "")
    return (f"stage {name!r} on {kind}: {len(failed)} of {executor.world_size} task(s) did not finish "
            f"(rank {ranks}){where}; see {first}{last}. Later stages were not started")
