"""``stats.json`` from datatrove's per-task stats, and the summary table printed at the end.

Each counting step records ``in_docs``/``in_bytes``, ``out_docs``/``out_bytes`` and
``dropped:<rule>:<reason>_docs``/``_bytes``, overall, as ``<counter>|<source>`` per source and as
``<counter>@<kind>`` per source kind; the reader records ``skipped:<reason>`` for input it could not
use, ``files_skipped:<reason>`` for files left out by path or extension, and ``warc_records:<type>``
and ``warc_content_types:<mime>`` for every WARC record. Steps are found by name, not position. Tasks write their stats under
``<logs>/<stage>/stats/NNNNN.json``; they are summed here, whatever run of the pipeline produced
them, so a resumed run reports the same totals as an uninterrupted one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any


def _total(value: Any) -> float:
    return value.get("total", 0) if isinstance(value, dict) else value


def merge_stage_stats(logging_dir: Path) -> dict[str, dict[str, float]]:
    """Sum every task's counters of one stage, keyed by the step's stats name (``str(step)``)."""
    merged: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for path in sorted((logging_dir / "stats").glob("*.json")):
        for step in json.loads(path.read_text(encoding="utf-8")):
            for label, value in step.get("stats", {}).items():
                merged[step["name"]][label] += _total(value)
    return merged


def _split_labels(counters: dict[str, float]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Separate overall counters from per-source ones (``<counter>|<source>``); per-kind ones left out."""
    overall: dict[str, float] = {}
    per_source: dict[str, dict[str, float]] = defaultdict(dict)
    for label, value in counters.items():
        what, per, source = label.partition("|")  # counter names never contain '|'
        if per:
            per_source[source][what] = value
        elif "@" not in label:
            overall[label] = value
    return overall, per_source


def _per_kind(counters: dict[str, float], what: str) -> dict[str, dict[str, int]]:
    """``{kind: {documents, bytes}}`` from the ``<what>_docs@<kind>`` counters."""
    kinds: dict[str, dict[str, int]] = {}
    for label, value in counters.items():
        name, at, kind = label.partition("@")
        if at and "|" not in label and name in (f"{what}_docs", f"{what}_bytes"):
            key = "documents" if name.endswith("_docs") else "bytes"
            kinds.setdefault(kind, {"documents": 0, "bytes": 0})[key] = int(value)
    return dict(sorted(kinds.items()))


def _prefixed(counters: dict[str, float], prefix: str) -> dict[str, int]:
    return {k[len(prefix) :]: int(v) for k, v in sorted(counters.items()) if k.startswith(prefix)}


def nothing_kept_message(body: dict[str, Any]) -> str:
    """ "kept 0 of N documents: reason n, ..." from a report that kept nothing."""
    read = body["read"]
    reasons = {reason: value["documents"] for reason, value in body["dropped"].items()}
    reasons.update({f"skipped:{r}": n for r, n in read["skipped"].items()})
    listed = (
        ", ".join(f"{r} {n}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        or "no reasons counted"
    )
    return f"kept 0 of {read['documents_out']} documents: {listed}"


def _step_report(name: str, counters: dict[str, float]) -> dict[str, Any]:
    overall, _ = _split_labels(counters)
    dropped = {
        label[len("dropped:") : -len("_docs")]: {
            "documents": int(value),
            "bytes": int(overall.get(label[: -len("_docs")] + "_bytes", 0)),
        }
        for label, value in sorted(overall.items())
        if label.startswith("dropped:") and label.endswith("_docs")
    }
    return {
        "name": name,
        "documents_in": int(overall.get("in_docs", 0)),
        "bytes_in": int(overall.get("in_bytes", 0)),
        "documents_out": int(overall.get("out_docs", 0)),
        "bytes_out": int(overall.get("out_bytes", 0)),
        "dropped": dropped,
    }


def build_report(steps: list[tuple[str, dict[str, float]]]) -> dict[str, Any]:
    """Assemble stats.json's body from (step name, merged counters) pairs, read step first."""
    read_name, read_counters = steps[0]
    read_overall, read_sources = _split_labels(read_counters)
    stages = [_step_report(name, counters) for name, counters in steps[1:]]
    reader = {
        "name": read_name,
        "files": int(read_overall.get("input_files", 0)),
        "files_skipped": _prefixed(read_overall, "files_skipped:"),
        "documents_out": int(read_overall.get("out_docs", 0)),
        "bytes_out": int(read_overall.get("out_bytes", 0)),
        "skipped": _prefixed(read_overall, "skipped:"),
        "by_kind": _per_kind(read_counters, "out"),
    }
    warc = _prefixed(read_overall, "warc_records:")
    if warc:
        reader["warc_records"] = warc
        reader["warc_content_types"] = _prefixed(read_overall, "warc_content_types:")
    by_source: dict[str, dict[str, Any]] = {}
    for source, counters in read_sources.items():
        by_source[source] = {
            "files": int(counters.get("input_files", 0)),
            "files_skipped": _prefixed(counters, "files_skipped:"),
            "documents_read": int(counters.get("out_docs", 0)),
            "bytes_read": int(counters.get("out_bytes", 0)),
            "skipped": _prefixed(counters, "skipped:"),
            "dropped": {},
            "documents_out": 0,
            "bytes_out": 0,
        }
    for _name, counters in steps[1:]:
        _, per_source = _split_labels(counters)
        for source, values in per_source.items():
            entry = by_source.setdefault(
                source,
                {"documents_read": 0, "bytes_read": 0, "skipped": {}, "dropped": {}, "documents_out": 0},
            )
            for label, value in values.items():
                if label.startswith("dropped:") and label.endswith("_docs"):
                    reason = label[len("dropped:") : -len("_docs")]
                    entry["dropped"][reason] = entry["dropped"].get(reason, 0) + int(value)
    _, last_sources = _split_labels(steps[-1][1])
    for source, values in last_sources.items():
        by_source.setdefault(source, {})["documents_out"] = int(values.get("out_docs", 0))
        by_source[source]["bytes_out"] = int(values.get("out_bytes", 0))
    final = (
        stages[-1] if stages else {"documents_out": reader["documents_out"], "bytes_out": reader["bytes_out"]}
    )
    dropped_total: dict[str, dict[str, int]] = {}
    for stage in stages:  # a reason can come from several steps (one rule, several kinds)
        for reason, value in stage["dropped"].items():
            total = dropped_total.setdefault(reason, {"documents": 0, "bytes": 0})
            total["documents"] += value["documents"]
            total["bytes"] += value["bytes"]
    output = {"documents": final["documents_out"], "bytes": final["bytes_out"]}
    if len(steps) > 1:
        output["by_kind"] = _per_kind(steps[-1][1], "out")
    return {
        "read": reader,
        "stages": stages,
        "dropped": dict(sorted(dropped_total.items())),
        "by_source": dict(sorted(by_source.items())),
        "output": output,
    }


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f}"


def format_summary(report: dict[str, Any]) -> str:
    """A plain-text table of the run: each stage's flow, the top drop reasons, each source's yield."""
    read = report["read"]
    lines = [
        f"{'stage':<20} {'docs in':>10} {'docs out':>10} {'dropped':>9} {'MB in':>10} {'MB out':>10}",
        f"{'read':<20} {'':>10} {read['documents_out']:>10,} {sum(read['skipped'].values()):>9,} "
        f"{'':>10} {_mb(read['bytes_out']):>10}",
    ]
    for stage in report["stages"]:
        dropped = sum(v["documents"] for v in stage["dropped"].values())
        lines.append(
            f"{stage['name']:<20} {stage['documents_in']:>10,} {stage['documents_out']:>10,} {dropped:>9,} "
            f"{_mb(stage['bytes_in']):>10} {_mb(stage['bytes_out']):>10}"
        )
    reasons = sorted(report["dropped"].items(), key=lambda kv: -kv[1]["documents"])[:10]
    if reasons or read["skipped"]:
        lines.append("")
        lines.append(f"{'drop / skip reason':<48} {'docs':>8} {'MB':>9}")
        for reason, value in reasons:
            lines.append(f"{reason:<48} {value['documents']:>8,} {_mb(value['bytes']):>9}")
        for reason, n in read["skipped"].items():
            lines.append(f"{'input skipped: ' + reason:<48} {n:>8,} {'':>9}")
    lines.append("")
    lines.append(f"{'source':<40} {'docs read':>10} {'docs kept':>10} {'MB read':>9} {'MB kept':>9}")
    for source, entry in report["by_source"].items():
        name = source if len(source) <= 40 else "…" + source[-39:]
        lines.append(
            f"{name:<40} {entry.get('documents_read', 0):>10,} {entry.get('documents_out', 0):>10,} "
            f"{_mb(entry.get('bytes_read', 0)):>9} {_mb(entry.get('bytes_out', 0)):>9}"
        )
    out = report["output"]
    lines.append(f"\nkept {out['documents']:,} documents ({_mb(out['bytes'])} MB)")
    return "\n".join(lines)
