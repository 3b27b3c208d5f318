"""The datatrove executor a data stage runs on: local processes by default, Slurm or Ray for clusters.

Curation and tokenization both build their pipelines as datatrove steps and hand them here, so one
recipe setting (``executor``, ``workers``, ``tasks``, ``executor_options``) scales either stage out
the same way, and every task leaves a completion marker under ``logging_dir`` that a rerun skips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXECUTORS = ("local", "slurm", "ray")


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

    ``options`` go to the executor's constructor as they are (Slurm: ``partition``, ``time``, ...).
    Locally, ``workers`` processes run at once, forked from one server that has imported the
    ``preload`` modules once; ``parallel=False`` runs the tasks one after another in this process,
    which for light stages is faster than starting workers (each imports lmfoundry, torch included).
    """
    if kind not in EXECUTORS:
        raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {kind!r}")
    options = dict(options or {})
    if kind == "slurm":
        from datatrove.executor.slurm import SlurmPipelineExecutor

        return SlurmPipelineExecutor(
            pipeline=pipeline, tasks=tasks, logging_dir=str(logging_dir), depends=depends, **options
        )
    if kind == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

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
