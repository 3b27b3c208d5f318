"""``curate(config, output_dir)``: raw sources to clean, deduplicated documents plus ``stats.json``.

Three parts: :func:`build` turns the config into datatrove stages (nothing runs), :func:`run`
runs them on the configured executor, :func:`report` sums the tasks' stats by step name into
``stats.json``.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from datatrove.data import Document
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets
from datatrove.pipeline.formatters.pii import PIIFormatter
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.pipeline.writers.parquet import ParquetWriter

from lmfoundry.atomic import replace_folder, write_json_atomic
from lmfoundry.data.curation.config import CurateConfig
from lmfoundry.data.curation.dedup import (
    VERIFY_DEFAULT_THRESHOLD,
    AllBuckets,
    DedupClusters,
    DedupFilter,
    ExactDedupSignature,
    FilteredWriter,
    MinhashSignature,
    StockMinhashSignature,
    detection_curve,
)
from lmfoundry.data.curation.filters import HtmlExtractor, PIIScrub, build_filters
from lmfoundry.data.curation.report import (
    build_report,
    format_summary,
    merge_stage_stats,
    nothing_kept_message,
)
from lmfoundry.data.curation.sources import Inputs, SourceReader, discover_inputs
from lmfoundry.data.curation.words import CachedSpacyTokenizer, RegexWordTokenizer
from lmfoundry.data.executors import ClusterRequestError, TaskFailedError, make_executor, run_stages
from lmfoundry.errors import StageFailedError
from lmfoundry.locks import output_lock

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
    body = _settings(dataclasses.asdict(config))
    body["resolved_inputs"] = [dataclasses.asdict(item) for item in inputs]
    return json.loads(json.dumps(body, default=str))


def _make_executor(
    config: CurateConfig,
    pipeline: list,
    tasks: int,
    logging_dir: Path,
    preload: tuple[str, ...],
    depends=None,
    parallel: bool = True,
):
    """The executor the config asks for (:func:`lmfoundry.data.executors.make_executor`).

    Every stage gets the same ``preload``: the fork server starts with the list of the last
    executor made, before the first stage runs.
    """
    return make_executor(
        config.executor,
        pipeline,
        tasks=tasks,
        workers=config.workers,
        logging_dir=logging_dir,
        options=config.executor_options,
        depends=depends,
        parallel=parallel,
        preload=(__name__, *preload),
    )


def _preload(config: CurateConfig, inputs: Inputs, filter_params: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    """Modules whose import the workers share, paid once in the fork server instead of once per task.

    :mod:`~lmfoundry.data.curation.warm` (datatrove's dependency checks, the language-ID model),
    spaCy's tokenizer (the word splitting), and tldextract's public-suffix trie when URLs can be
    judged (the URL rule is on and some input is not plain text or code).
    """
    modules = ["lmfoundry.data.curation.warm"]
    if config.word_tokenizer != "regex":
        modules.append("lmfoundry.data.curation.spacy_en")
    urls = inputs.hubs or any(item.format not in ("text", "code") for item in inputs.files)
    if urls and not config.stock_steps and any("url" in rules for rules in filter_params.values()):
        modules.append("lmfoundry.data.curation.urls")
    return tuple(modules)


@dataclass
class CurationPlan:
    """What :func:`build` makes of a config: the datatrove stages and the steps whose counts are reported.

    ``counted`` maps each reported name (``read``, ``extract``, ``gopher_quality@web``, ...,
    ``dedup``) to the stage it runs in and the name of its stats in datatrove's stats files, so
    the report finds each step's counters by name, whatever the order or number of steps.
    """

    config: CurateConfig
    out: Path
    work: Path
    inputs: Inputs
    stages: list[tuple[str, Any]] = field(default_factory=list)  # (stage name, executor)
    counted: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (stage, stats name)
    started: float = field(default_factory=time.time)

    @property
    def logs(self) -> Path:
        return self.work / "logs"


def curate(config: CurateConfig, output_dir: str | os.PathLike) -> dict[str, Any]:
    """Curate ``config.inputs`` into ``output_dir``; return the contents of its ``stats.json``.

    Configuration mistakes (unknown filter or parameter, missing input, ...) raise ``ValueError``
    or ``FileNotFoundError`` before any work starts. A complete output folder is returned as is. A
    run that keeps no document raises ``ValueError`` naming the reasons, and writes no
    ``stats.json`` (its report is in ``.curate/stats.json``). ``output_dir`` is locked while it
    runs (:func:`lmfoundry.locks.output_lock`): another process on it stops with one line.
    """
    with output_lock(output_dir, "curate"):
        return _curate(config, Path(output_dir))


def _curate(config: CurateConfig, out: Path) -> dict[str, Any]:
    stats_path = out / STATS_FILE
    config.validate()
    inputs = discover_inputs(config.inputs, config.text_field, config.hf_split)
    if stats_path.is_file():
        done = json.loads(stats_path.read_text(encoding="utf-8"))
        if _settings(done.get("config", {})) == _settings(dataclasses.asdict(config)):
            logger.info("%s is complete (%s exists); nothing to do", out, STATS_FILE)
            return done
        if not config.overwrite:
            raise FileExistsError(f"{stats_path}: curated with other settings or inputs (pass --overwrite to "
                                  "replace it; the new output is built beside it and swapped in when whole)")
        return _curate_beside(config, inputs, out)
    plan = build(config, inputs, out)
    if not run(plan):
        logger.info("jobs submitted; rerun the same command once they finish to write %s", stats_path)
        return {"complete": False, "submitted": True, "logging_dir": str(plan.logs)}
    return report(plan)


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """A config's fields that decide the output (JSON-normalised), not those that say how it runs."""
    body = {k: v for k, v in config.items() if k not in ("workers", "progress", "executor_options", "overwrite")}
    return json.loads(json.dumps(body, default=str))


def _curate_beside(config: CurateConfig, inputs: Inputs, out: Path) -> dict[str, Any]:
    """``--overwrite`` of a complete folder: curate into ``OUT.new`` and swap it in only when whole, so a
    failure (or a run that keeps nothing) leaves the earlier output exactly as it was."""
    staged = out.with_name(out.name + ".new")
    shutil.rmtree(staged, ignore_errors=True)
    plan = build(config, inputs, staged)
    if not run(plan):
        raise ValueError(f"{out}: --overwrite needs the new curation to finish in this command (executor "
                         f"{config.executor!r} only submitted it); curate into another folder on a cluster")
    try:
        stats = report(plan)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    replace_folder(staged, out)
    return stats


def build(config: CurateConfig, inputs: Inputs, out: Path) -> CurationPlan:
    """The four datatrove stages for ``config`` (nothing runs yet); prepares ``out/.curate``."""
    filter_params = config.filter_params()
    dedup = config.dedup_params()
    work = out / WORK_DIR
    fingerprint = _fingerprint(config, inputs.all)
    _reset_if_config_changed(out, work, fingerprint)
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(work / "config.json", fingerprint)
    plan = CurationPlan(config, out, work, inputs)

    word_tokenizer: Any = {
        "spacy": lambda: "en",  # datatrove's stock spaCy tokenizer
        "spacy_cached": CachedSpacyTokenizer,
        "regex": RegexWordTokenizer,
    }[config.word_tokenizer]()
    exclusion = Path(config.exclusion_dir) if config.exclusion_dir else None

    def exclusion_writer(rule: str):
        return JsonlWriter(str(exclusion / rule), output_filename="${rank}.jsonl.gz") if exclusion else None

    tasks = config.tasks
    # Small inputs run their light stages in-process; worker start-up would cost more than it saves.
    big = sum(item.size for item in inputs.files) > PARALLEL_LIGHT_STAGES_BYTES or bool(inputs.hubs)
    minhash_config = MinhashConfig(
        n_grams=dedup["n_grams"],
        num_buckets=dedup["num_buckets"],
        hashes_per_bucket=dedup["hashes_per_bucket"],
        seed=dedup["seed"],
    )
    if dedup["minhash"] and dedup["similarity"] is not None:
        logger.info(
            "near-duplicate detection for similarity %s:\n%s",
            dedup["similarity"],
            detection_curve(dedup["num_buckets"], dedup["hashes_per_bucket"]),
        )
    # ---- stage 1: read, extract, filter, scrub, sign -------------------------------------------
    reader = SourceReader(
        inputs,
        text_field=config.text_field,
        id_field=config.id_field,
        hf_split=config.hf_split,
        max_doc_bytes=config.max_doc_bytes,
        code_max_file_bytes=config.code_max_file_bytes,
        text_split_bytes=config.text_split_bytes,
        strip_gutenberg=config.strip_gutenberg,
        progress=config.progress,
    )
    counted: list[tuple[str, Any]] = [("read", reader)]
    if any(item.format == "warc" for item in inputs.files):
        _check_html_extraction()
        counted.append(("extract", HtmlExtractor(timeout=config.extract_timeout_s)))
    counted += build_filters(
        filter_params, word_tokenizer, exclusion_writer if exclusion else None, stock=config.stock_steps
    )
    stage1: list[Any] = [step for _, step in counted]
    if config.pii:
        stage1.append(PIIFormatter() if config.stock_steps else PIIScrub())
    if config.stock_steps:  # datatrove's writer as it comes (gzip level 9)
        stage1.append(JsonlWriter(str(work / "filtered"), output_filename="${rank}.jsonl.gz"))
    else:
        stage1.append(FilteredWriter(work / "filtered"))
    if dedup["exact"]:
        stage1.append(ExactDedupSignature(work / "exact"))
    if dedup["minhash"]:
        signature = StockMinhashSignature if config.stock_steps else MinhashSignature
        stage1.append(signature(str(work / "minhash_sigs"), config=minhash_config, language=word_tokenizer))
    plan.counted = {name: ("filter", str(step)) for name, step in counted}
    logs = plan.logs
    preload = _preload(config, inputs, filter_params)
    stages = [("filter", _make_executor(config, stage1, tasks, logs / "filter", preload))]
    # ---- stages 2-3: duplicate clusters ---------------------------------------------------------
    any_dedup = dedup["exact"] or dedup["minhash"]
    if dedup["minhash"]:
        buckets = MinhashDedupBuckets(
            str(work / "minhash_sigs"), str(work / "minhash_dups"), config=minhash_config
        )
        # one task per bucket on big inputs (in parallel); else every bucket in one task, in-process
        bucket_steps, bucket_tasks = ([buckets], minhash_config.num_buckets) if big else ([AllBuckets(buckets)], 1)
        stages.append(
            (
                "minhash_buckets",
                _make_executor(
                    config,
                    bucket_steps,
                    bucket_tasks,
                    logs / ("buckets" if big else "buckets-all"),
                    preload,
                    stages[-1][1],
                    parallel=big,
                ),
            )
        )
    if any_dedup:
        verify = None
        if dedup["minhash"] and dedup["verify"]:
            verify = {
                "threshold": dedup["similarity"] or VERIFY_DEFAULT_THRESHOLD,
                "filtered_folder": work / "filtered",
                "config": minhash_config,
                "word_tokenizer": word_tokenizer,
            }
        clusters = DedupClusters(
            work / "exact" if dedup["exact"] else None,
            work / "minhash_dups" if dedup["minhash"] else None,
            work / "removals",
            world_size=tasks,
            verify=verify,
        )
        stages.append(
            (
                "dedup_clusters",
                _make_executor(config, [clusters], 1, logs / "clusters", preload, stages[-1][1], parallel=False),
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
            _make_executor(
                config, [dedup_step, writer], tasks, logs / "output", preload, stages[-1][1], parallel=big
            ),
        )
    )
    plan.counted["dedup"] = ("dedup_filter", str(dedup_step))
    plan.stages = stages
    return plan



def run(plan: CurationPlan) -> bool:
    """Run the plan's stages in order; False when they were only submitted (Slurm), True when done.

    A failed task ends the run before a later stage starts (:func:`lmfoundry.data.executors.run_stages`).
    """
    try:
        return run_stages(plan.config.executor, plan.stages)
    except ClusterRequestError:
        raise  # a configuration error (ValueError): nothing was submitted
    except TaskFailedError as err:
        raise CurationError(str(err)) from err
    except Exception as err:
        raise CurationError(f"curation failed: {type(err).__name__}: {err} (task logs: {plan.logs})") from err


_STAGE_LOGS = {"filter": "filter", "dedup_filter": "output"}


def report(plan: CurationPlan) -> dict[str, Any]:
    """Sum the tasks' stats into ``stats.json`` (written last, atomically), clean up, print the summary.

    Raises ``ValueError`` when no document was kept: the run is useless to the stages after it, and
    the reasons are what the user needs ("kept 0 of 1 documents: gopher_long_doc 1").
    """
    config, out, work = plan.config, plan.out, plan.work
    merged = {stage: merge_stage_stats(plan.logs / logs) for stage, logs in _STAGE_LOGS.items()}
    named = [(name, merged[stage].get(stats_name, {})) for name, (stage, stats_name) in plan.counted.items()]
    body = build_report(named)
    licenses = {item.source: item.license for item in plan.inputs.files if item.license}
    if licenses:
        body["licenses"] = dict(sorted(licenses.items()))  # source -> SPDX id (also each document's metadata)
    suffix = ".parquet" if config.output_format == "parquet" else ".jsonl.gz"
    body["output"].update(
        {
            "format": config.output_format,
            "files": sorted(p.name for p in out.iterdir() if p.name.endswith(suffix)),
        }
    )
    result = {
        "complete": True,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "lmfoundry_version": _version(),
        "elapsed_s": round(time.time() - plan.started, 2),
        **body,
        "config": dataclasses.asdict(config),
    }
    for name in _INTERMEDIATE:
        shutil.rmtree(work / name, ignore_errors=True)
    if not body["output"]["documents"]:
        write_json_atomic(work / STATS_FILE, {**result, "complete": False})
        for path in out.iterdir():  # empty shards would look like a result
            if path.name.endswith(suffix):
                path.unlink()
        raise ValueError(f"{out}: {nothing_kept_message(body)} (details: {work / STATS_FILE})")
    write_json_atomic(out / STATS_FILE, result)
    logger.info("curation summary for %s\n%s", out, format_summary(result))
    return result


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
