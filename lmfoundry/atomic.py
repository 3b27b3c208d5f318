"""Atomic file writes, used by every stage: a reader (or a crash) sees the old file or the new one.

Each write goes to a temporary file in the destination's folder (same filesystem, so the rename is
atomic), is flushed to disk, and replaces the destination with ``os.replace``. A write that fails
removes its temporary file. Files get mode 0644 (``mkstemp``'s 0600 would make a model card or a
manifest private to whoever wrote it).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lmfoundry.locks import LOCK_FILE


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int = 2) -> None:
    """Replace ``path`` with ``data`` as indented JSON (non-JSON values written with ``str``)."""
    write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False, default=str) + "\n")


def copy_file_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Replace ``dst`` with a copy of ``src`` in one step."""
    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_folder(staged: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the whole folder ``staged`` in place of ``target``, which stays whole until the swap.

    Two renames in one filesystem: the old folder moves aside, the new one takes its name, then
    the old one is deleted. A crash between them leaves ``target.old`` beside a whole ``target``
    (or, before the second rename, the old folder under ``target.old``): never a half folder.
    ``target``'s lock file is hard-linked into the new folder first, so whoever holds the lock on
    ``target`` (:mod:`lmfoundry.locks`) still holds it after the swap.
    """
    staged, target = Path(staged), Path(target)
    if not staged.is_dir():
        raise FileNotFoundError(f"{staged}: no staged folder to put in place of {target}")
    lock = target / LOCK_FILE
    if lock.is_file():
        (staged / LOCK_FILE).unlink(missing_ok=True)
        os.link(lock, staged / LOCK_FILE)  # one inode, so one flock, under either folder's name
    aside = target.with_name(target.name + ".old")
    shutil.rmtree(aside, ignore_errors=True)
    if target.exists():
        os.replace(target, aside)
    try:
        os.replace(staged, target)
    except OSError:
        if aside.exists():
            os.replace(aside, target)  # put the old folder back
        raise
    shutil.rmtree(aside, ignore_errors=True)
