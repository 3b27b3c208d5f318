"""``results.json`` (the shared contract: model card, pipeline summary) and its ``results.md`` table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmfoundry.atomic import write_json_atomic, write_text_atomic


def markdown_table(results: dict[str, Any]) -> str:
    lines = [f"# Evaluation of {results['model']}", "", "| Task | Metric | Value |", "|---|---|---|"]
    for task, metrics in results["results"].items():
        lines.extend(f"| {task} | {metric} | {value:.4f} |" for metric, value in metrics.items())
    return "\n".join(lines) + "\n"


def save_results(results: dict[str, Any], output: str | Path) -> Path:
    """Write ``output`` (results.json) and ``results.md`` beside it; returns the JSON path."""
    output = Path(output)
    write_json_atomic(output, results)
    write_text_atomic(output.with_suffix(".md"), markdown_table(results))
    return output
