"""Keep the machine's filesystem out of what goes public: local paths in a run's records.

A run records where things were on the machine that ran it (``train.shards: /home/me/runs/x/shards``,
``data.inputs: [/home/me/private/...]``): right for rerunning there, a leak in a public model card.
Paths inside the run folder become relative to it (``shards``): the run folder's own layout, which
says nothing about the machine. Other absolute paths keep only their last part (``<local>/docs.jsonl``),
so a reader still sees what kind of input it was. Relative paths, Hub ids (``HuggingFaceFW/fineweb``,
``hf:...``) and URLs name nothing on the machine and stay as they are.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any

LOCAL = "<local>"


def public_path(value: str, run_dir: Path | None = None) -> str:
    """``value`` as a public page may show it: a local absolute path made relative or reduced to its name."""
    path = _absolute_path(value)
    if path is None:
        return value
    inside = _relative_to_run(path, run_dir) if run_dir is not None else None
    if inside is not None:
        return inside
    return f"{LOCAL}/{path.name}" if path.name else LOCAL


def public_values(value: Any, run_dir: Path | None = None) -> Any:
    """``value`` (a recipe: nested dicts and lists) with :func:`public_path` applied to every string in it."""
    if isinstance(value, str):
        return public_path(value, run_dir)
    if isinstance(value, dict):
        return {key: public_values(item, run_dir) for key, item in value.items()}
    if isinstance(value, list):
        return [public_values(item, run_dir) for item in value]
    return value


def _absolute_path(value: str) -> PurePath | None:
    """The path ``value`` names when it is an absolute local one (``/…``, ``~/…``, ``file://…``, ``C:\\…``)."""
    if "\n" in value:  # text (a sample prompt), not a path
        return None
    if value.startswith("file://"):
        value = value[len("file://"):]
    if value.startswith(("/", "~")):
        return Path(os.path.expanduser(value))
    windows = PureWindowsPath(value)
    return windows if windows.drive and windows.is_absolute() else None


def _relative_to_run(path: PurePath, run_dir: Path) -> str | None:
    """``path`` relative to the run folder (``.`` for the folder itself), or None when it lies outside.

    Both sides are also compared resolved, since the run may have been recorded through a symlink
    (macOS's ``/tmp`` is ``/private/tmp``).
    """
    paths = {path, Path(path).resolve()} if isinstance(path, Path) else {path}
    for base in {run_dir.absolute(), run_dir.resolve()}:
        for candidate in paths:
            if candidate.is_relative_to(base):
                return candidate.relative_to(base).as_posix()
    return None
