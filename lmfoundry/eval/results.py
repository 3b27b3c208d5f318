"""``results.json`` (the shared contract: model card, pipeline summary) and its ``results.md`` table."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def markdown_table(results: dict[str, Any]) -> str:
    lines = [f"# Evaluation of {results['model']}", "", "| Task | Metric | Value |", "|---|---|---|"]
    for task, metrics in results["results"].items():
        lines.extend(f"| {task} | {metric} | {value:.4f} |" for metric, value in metrics.items())
    return "\n".join(lines) + "\n"


def save_results(results: dict[str, Any], output: str | Path) -> Path:
    """Write ``output`` (results.json) and ``results.md`` beside it; returns the JSON path."""
    output = Path(output)
    write_atomic(output, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_atomic(output.with_suffix(".md"), markdown_table(results))
    return output
