"""``curate(config, output_dir)``: raw sources to clean, deduplicated documents plus ``stats.json``.

Four datatrove stages, each run by a datatrove executor (local processes by default; Slurm or
Ray from the same config), each task marking its completion so a rerun after an interruption
skips finished tasks:

1. ``filter`` (``tasks`` tasks): read → extract HTML → quality rules → PII → write the survivors
   to ``.curate/filtered/`` → exact and MinHash signatures.
2. ``minhash_buckets`` (one task per LSH bucket): datatrove's bucket stage finds candidate pairs.
3. ``dedup_clusters`` (one task): exact groups and MinHash pairs into clusters, one kept each.
4. ``dedup_filter`` (``tasks`` tasks): drop duplicates, write the final shards to ``output_dir``.

``stats.json`` is written last, atomically: an output folder without it is not complete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import orjson
from datatrove.data import Document
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets
from datatrove.pipeline.formatters.pii import PIIFormatter
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.pipeline.writers.parquet import ParquetWriter

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.curation.config import CurateConfig
from lmfoundry.data.curation.dedup import (
    DedupClusters,
    DedupFilter,
    ExactDedupSignature,
    MinhashSignature,
    StockMinhashSignature,
)
from lmfoundry.data.curation.filters import HtmlExtractor, build_filters
from lmfoundry.data.curation.report import build_report, format_summary, merge_stage_stats
from lmfoundry.data.curation.sources import SourceReader, discover_inputs
from lmfoundry.data.curation.words import RegexWordTokenizer
from lmfoundry.data.executors import ClusterRequestError, TaskFailedError, make_executor, run_stages
from lmfoundry.errors import StageFailedError

logger = logging.getLogger(__name__)

STATS_FILE = "stats.json"
WORK_DIR = ".curate"
# Intermediate folders under WORK_DIR, removed once the output is complete (logs are kept).
PARALLEL_LIGHT_STAGES_BYTES = 256 * 2**20
_INTERMEDIATE = ("filtered", "exact", "minhash_sigs", "minhash_dups", "removals")


class CurationError(StageFailedError):
    """A stage failed for a reason other than bad input (bad input is skipped and counted)."""


def output_adapter(writer, document: Document) -> dict[str, Any]:
    """Output record: ``text``, ``id``, ``source`` and the remaining ``metadata``."""
    metadata = dict(document.metadata)
    return {
        "text": document.text,
        "id": document.id,
        "source": metadata.pop("source", None),
        "metadata": metadata,
    }


def parquet_adapter(writer, document: Document) -> dict[str, Any]:
    """Parquet wants one schema for all rows: metadata (which varies by source) goes in as JSON."""
    record = output_adapter(writer, document)
    record["metadata"] = orjson.dumps(record["metadata"]).decode()
    return record


def _fingerprint(config: CurateConfig, inputs: list[Any]) -> dict[str, Any]:
    body = dataclasses.asdict(config)
    for key in ("workers", "progress", "executor_options"):  # how it runs, not what it computes
        body.pop(key)
    body["resolved_inputs"] = [dataclasses.asdict(item) for item in inputs]
    return json.loads(json.dumps(body, default=str))


def _make_executor(
    config: CurateConfig, pipeline: list, tasks: int, logging_dir: Path, depends=None, parallel: bool = True
):
    """The executor the config asks for (:func:`lmfoundry.data.executors.make_executor`)."""
    return make_executor(
        config.executor,
        pipeline,
        tasks=tasks,
        workers=config.workers,
        logging_dir=logging_dir,
        options=config.executor_options,
        depends=depends,
        parallel=parallel,
        preload=(__name__,),
    )


def curate(config: CurateConfig, output_dir: str | os.PathLike) -> dict[str, Any]:
    """Curate ``config.inputs`` into ``output_dir``; return the contents of its ``stats.json``.

    Configuration mistakes (unknown filter or parameter, missing input, ...) raise ``ValueError``
    or ``FileNotFoundError`` before any work starts. A complete output folder is returned as is.
    """
    started = time.time()
    config.validate()
    filter_params = config.filter_params()
    dedup = config.dedup_params()
    files, hubs = discover_inputs(config.inputs, config.text_field, config.hf_split)
    out = Path(output_dir)
    stats_path = out / STATS_FILE
    if stats_path.is_file():
        logger.info("%s is complete (%s exists); nothing to do", out, STATS_FILE)
        return json.loads(stats_path.read_text(encoding="utf-8"))
    work = out / WORK_DIR
    fingerprint = _fingerprint(config, [*files, *hubs])
    _reset_if_config_changed(out, work, fingerprint)
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(work / "config.json", fingerprint)

    if config.word_tokenizer == "spacy":
        word_tokenizer: Any = "en"  # datatrove's stock spaCy tokenizer
    else:
        word_tokenizer = RegexWordTokenizer()
    exclusion = Path(config.exclusion_dir) if config.exclusion_dir else None

    def exclusion_writer(rule: str):
        return JsonlWriter(str(exclusion / rule), output_filename="${rank}.jsonl.gz") if exclusion else None

    tasks = config.tasks
    # Small inputs run their light stages in-process; worker start-up would cost more than it saves.
    big = sum(item.size for item in files) > PARALLEL_LIGHT_STAGES_BYTES or bool(hubs)
    minhash_config = MinhashConfig(
        n_grams=dedup["n_grams"],
        num_buckets=dedup["num_buckets"],
        hashes_per_bucket=dedup["hashes_per_bucket"],
        seed=dedup["seed"],
    )
    # ---- stage 1: read, extract, filter, scrub, sign -------------------------------------------
    reader = SourceReader(
        files,
        hubs,
        text_field=config.text_field,
        id_field=config.id_field,
        hf_split=config.hf_split,
        max_doc_bytes=config.max_doc_bytes,
        code_max_file_bytes=config.code_max_file_bytes,
        progress=config.progress,
    )
    counted: list[tuple[str, Any]] = [("read", reader)]
    if any(item.kind == "warc" for item in files):
        _check_html_extraction()
        counted.append(("extract", HtmlExtractor(timeout=5)))
    filters = build_filters(
        filter_params, word_tokenizer, exclusion_writer if exclusion else None, stock=config.stock_steps
    )
    counted += list(zip(filter_params, filters))
    stage1: list[Any] = [step for _, step in counted]
    if config.pii:
        stage1.append(PIIFormatter())
    stage1.append(JsonlWriter(str(work / "filtered"), output_filename="${rank}.jsonl.gz"))
    if dedup["exact"]:
        stage1.append(ExactDedupSignature(work / "exact"))
    if dedup["minhash"]:
        signature = StockMinhashSignature if config.stock_steps else MinhashSignature
        stage1.append(signature(str(work / "minhash_sigs"), config=minhash_config, language=word_tokenizer))
    logs = work / "logs"
    stages = [("filter", _make_executor(config, stage1, tasks, logs / "filter"))]
    # ---- stages 2-3: duplicate clusters ---------------------------------------------------------
    any_dedup = dedup["exact"] or dedup["minhash"]
    if dedup["minhash"]:
        buckets = MinhashDedupBuckets(
            str(work / "minhash_sigs"), str(work / "minhash_dups"), config=minhash_config
        )
        stages.append(
            (
                "minhash_buckets",
                _make_executor(
                    config,
                    [buckets],
                    minhash_config.num_buckets,
                    logs / "buckets",
                    stages[-1][1],
                    parallel=big,
                ),
            )
        )
    if any_dedup:
        clusters = DedupClusters(
            work / "exact" if dedup["exact"] else None,
            work / "minhash_dups" if dedup["minhash"] else None,
            work / "removals",
            world_size=tasks,
        )
        stages.append(
            (
                "dedup_clusters",
                _make_executor(config, [clusters], 1, logs / "clusters", stages[-1][1], parallel=False),
            )
        )
    # ---- stage 4: drop duplicates, write the output ---------------------------------------------
    dedup_step = DedupFilter(
        work / "filtered",
        work / "removals" if any_dedup else None,
        exclusion_writer("dedup") if exclusion else None,
    )
    if config.output_format == "parquet":
        writer = ParquetWriter(str(out), output_filename="${rank}.parquet", adapter=parquet_adapter)
    else:
        writer = JsonlWriter(str(out), output_filename="${rank}.jsonl.gz", adapter=output_adapter)
    stages.append(
        (
            "dedup_filter",
            _make_executor(config, [dedup_step, writer], tasks, logs / "output", stages[-1][1], parallel=big),
        )
    )
    counted.append(("dedup", dedup_step))

    try:
        complete = run_stages(config.executor, stages)
    except ClusterRequestError:
        raise  # a configuration error (ValueError): nothing was submitted
    except TaskFailedError as err:
        raise CurationError(str(err)) from err
    except Exception as err:
        raise CurationError(f"curation failed: {type(err).__name__}: {err} (task logs: {logs})") from err
    if not complete:  # Slurm: submitted, not yet run
        logger.info("jobs submitted; rerun the same command once they finish to write %s", stats_path)
        return {"complete": False, "submitted": True, "logging_dir": str(logs)}

    # ---- report ---------------------------------------------------------------------------------
    merged = merge_stage_stats(logs / "filter", len(stage1))
    named = [(name, merged[i]) for i, (name, _) in enumerate(counted[:-1])]
    named.append(("dedup", merge_stage_stats(logs / "output", 2)[0]))
    report = build_report(named)
    suffix = ".parquet" if config.output_format == "parquet" else ".jsonl.gz"
    report["output"].update(
        {
            "format": config.output_format,
            "files": sorted(p.name for p in out.iterdir() if p.name.endswith(suffix)),
        }
    )
    report = {
        "complete": True,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "lmfoundry_version": _version(),
        "elapsed_s": round(time.time() - started, 2),
        **report,
        "config": dataclasses.asdict(config),
    }
    for name in _INTERMEDIATE:
        shutil.rmtree(work / name, ignore_errors=True)
    write_json_atomic(stats_path, report)
    logger.info("curation summary for %s\n%s", out, format_summary(report))
    return report


def _reset_if_config_changed(out: Path, work: Path, fingerprint: dict[str, Any]) -> None:
    """A half-finished run of a *different* config must not be resumed: start that folder afresh."""
    previous = work / "config.json"
    if not previous.is_file():
        return
    if json.loads(previous.read_text(encoding="utf-8")) == fingerprint:
        logger.info("resuming the interrupted curation in %s (finished tasks are skipped)", out)
        return
    logger.warning("%s holds an unfinished curation of other settings; starting it over", out)
    shutil.rmtree(work)
    for path in out.iterdir():
        if path.name.endswith((".jsonl.gz", ".parquet")):
            path.unlink()


def _check_html_extraction() -> None:
    """WARC inputs need trafilatura in every worker: find out now, not once per record."""
    try:
        import trafilatura  # noqa: F401
    except ImportError as err:
        raise ValueError(
            f"WARC inputs need a working trafilatura (pip install 'lmfoundry[data]'): {err}"
        ) from err


def _version() -> str:
    from lmfoundry.version import __version__

    return __version__
