"""Reading task data: local files in the benchmarks' original formats, or the Hub through `datasets`.

Errors name the file (and line) and what was expected, because a wrong ``--data-dir`` is the most
common mistake and a KeyError deep inside a task says nothing useful.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """Records of a ``.jsonl`` or ``.jsonl.gz`` file, each checked for the ``required`` fields."""
    records = []
    for line_no, record in _jsonl_lines(path):
        missing = [k for k in required if k not in record]
        if missing:
            raise ValueError(
                f"{path}:{line_no}: missing field(s) {', '.join(missing)}; expected {', '.join(required)}"
            )
        records.append(record)
    if not records:
        raise ValueError(f"{path}: no records; expected JSON lines with fields {', '.join(required)}")
    return records


def _jsonl_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{line_no}: not valid JSON ({err.msg})") from err
                if not isinstance(record, dict):
                    raise ValueError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
                yield line_no, record
    except (gzip.BadGzipFile, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot be read as UTF-8 JSON lines ({err})") from err


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected {what}")
    return path


def load_hub(dataset_id: str, config: str | None, split: str, local_hint: str) -> list[dict[str, Any]]:
    """One split of a Hub dataset as records; an unreachable Hub names the local alternative."""
    import datasets

    try:
        return list(datasets.load_dataset(dataset_id, config, split=split))
    except Exception as err:  # offline, gated, renamed: all mean "use local files"
        raise FileNotFoundError(
            f"could not load {dataset_id} ({config or 'default'}, {split}) from the Hub: {err}; "
            f"for offline use pass --data-dir DIR with {local_hint}"
        ) from err
