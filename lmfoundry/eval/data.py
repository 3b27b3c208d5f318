"""Reading task data: local files in the benchmarks' original formats, or the Hub through `datasets`.

Errors name the file (and line) and what was expected, because a wrong ``--data-dir`` is the most
common mistake and a KeyError deep inside a task says nothing useful.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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


HUB_PROBE_TIMEOUT_S = 3.0


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` set: ``datasets`` then reads only its cache and
    fails at once when the dataset is not there."""
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def hub_unreachable() -> str | None:
    """Why the Hub endpoint (``HF_ENDPOINT``) takes no TCP connection within a few seconds, or None.
    Without this probe an unreachable Hub costs ~40 s of ``datasets`` retries before the error."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S):
            return None
    except OSError as err:
        return f"cannot reach {host}:{port} ({err.strerror or err})"


def load_hub(dataset_id: str, config: str | None, split: str, local_hint: str) -> list[dict[str, Any]]:
    """One split of a Hub dataset as records; an unreachable Hub names the local alternative at once."""
    where = f"{dataset_id} ({config or 'default'}, {split})"
    advice = f"for offline use pass --data-dir DIR with {local_hint}"
    if not offline_mode() and (reason := hub_unreachable()):
        raise FileNotFoundError(f"could not load {where} from the Hub: {reason}; {advice}")
    import datasets

    try:
        return list(datasets.load_dataset(dataset_id, config, split=split))
    except Exception as err:  # offline, gated, renamed: all mean "use local files"
        raise FileNotFoundError(f"could not load {where} from the Hub: {err}; {advice}") from err
