"""One process per output folder: a kernel lock held for as long as a verb or stage writes there.

Two runs on one folder would mix their outputs (one's checkpoints, the other's model and recipe), so
every verb that writes a folder holds ``FOLDER/.lock`` with ``fcntl.flock`` while it works. The
kernel frees the lock when the process dies, so a SIGKILLed run never blocks the next one; the file
only records who holds it (pid, verb, start time) for the error the second process prints.

A folder the holder created and left empty (the verb failed before writing anything) is removed
when the lock is released, so a failed command leaves nothing behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lmfoundry.errors import InputError

LOCK_FILE = ".lock"


class FolderLockedError(InputError):
    """Another live process holds the folder's lock."""


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``folder``'s lock (creating the folder) for the ``with`` block; ``what`` names the holder's work."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
        raise FolderLockedError(
            f"{folder}: in use by another lmfoundry process (pid {holder.get('pid', '?')}, "
            f"{holder.get('what', '?')}, since {since}) (expected one process per folder: wait for it to end or "
            "stop it)"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}).encode(), 0)
        yield folder
    finally:
        if created and {p.name for p in folder.iterdir()} <= {LOCK_FILE}:
            shutil.rmtree(folder, ignore_errors=True)  # failed before writing anything: leave no folder
        os.close(fd)  # closing the descriptor releases the lock


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
