"""One process per output folder: a kernel lock held for as long as a verb or stage writes there.

Two runs on one folder would mix their outputs (one's checkpoints, the other's model and recipe), so
every verb that writes a folder holds ``FOLDER/.lock`` with ``fcntl.flock`` while it works. The
kernel frees the lock when the process dies, so a SIGKILLed run never blocks the next one; the file
only records who holds it (pid, verb, start time) for the error the second process prints. A forked
child (a datatrove or DataLoader worker) closes its copy of the locked descriptor at once: a flock
lives as long as any process holds the descriptor, so workers that outlive a killed parent would
otherwise keep its folder locked.

Both the command line and the library entry points (``curate``, ``tokenize_shards``,
``build_tokenizer``, ``evaluate_model``, ``push_to_hub``, ``train``) take the lock, so two Python
processes are kept apart as well as two commands. Within one process the lock is re-entrant: the
CLI holds a folder and the library function it calls takes the same folder again. That needs a
registry, because ``flock`` locks belong to an open file description: a second ``open`` + ``flock``
of the same file in the same process would conflict with the first.

A folder the holder created and left empty (the verb failed before writing anything) is removed
when the lock is released, so a failed command leaves nothing behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

from lmfoundry.errors import InputError

LOCK_FILE = ".lock"


class FolderLockedError(InputError):
    """Another live process holds the folder's lock."""


@dataclass
class _Held:
    """A folder this process holds: the locked descriptor and how many ``with`` blocks share it."""

    fd: int
    created: bool  # the outermost holder created the folder: remove it on release if still empty
    count: int = 1


_HELD: dict[Path, _Held] = {}
_GUARD = threading.Lock()


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``folder``'s lock (creating the folder) for the ``with`` block; ``what`` names the holder's work.

    Re-entrant within a process: a nested ``folder_lock`` on a folder this process already holds
    shares that lock (the holder named in the lock file stays the outermost one).
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            held.count += 1
        else:
            held = _HELD[key] = _Held(_acquire(folder, what), created)
    try:
        yield folder
    finally:
        with _GUARD:
            mine = _HELD.get(key) is held  # not in a forked child, which let go of its parent's locks at the fork
            held.count -= 1
            if mine and held.count == 0:
                del _HELD[key]
                if held.created and folder.is_dir() and {p.name for p in folder.iterdir()} <= {LOCK_FILE}:
                    shutil.rmtree(folder, ignore_errors=True)  # failed before writing anything: leave no folder
                os.close(held.fd)  # closing the descriptor releases the lock


def is_rank_zero() -> bool:
    """Whether this is rank 0 of an ``accelerate launch`` / ``torchrun`` (or a plain single process),
    read from the launcher's environment, before any distributed setup."""
    return int(os.environ.get("RANK", "0")) == 0


def output_lock(folder: str | os.PathLike, what: str, *, create: bool = True) -> AbstractContextManager:
    """The lock a verb or library entry point takes on the folder it writes.

    Under ``accelerate launch`` / ``torchrun`` every rank runs the same code on the same folder:
    rank 0 holds the lock for all of them. ``create=False`` is for a folder the caller writes into
    but does not make (a model folder ``push`` adds its card to): a missing one is not locked (and
    not created), so the caller's own check says it is missing.
    """
    if not is_rank_zero() or (not create and not Path(folder).is_dir()):
        return nullcontext(Path(folder))
    return folder_lock(folder, what)


def _acquire(folder: Path, what: str) -> int:
    """Open and lock ``folder/.lock``, record this process as its holder; return the descriptor."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
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
    except BaseException:
        os.close(fd)
        raise
    return fd


def _forget_in_child() -> None:
    """In a forked child: close the inherited lock descriptors (the parent still holds the locks) and start
    with an empty registry and a fresh guard (another thread may have held the old one at the fork)."""
    global _GUARD
    for held in _HELD.values():
        with suppress(OSError):
            os.close(held.fd)
    _HELD.clear()
    _GUARD = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
