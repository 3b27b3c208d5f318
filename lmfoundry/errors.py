"""The one error boundary of every verb: an expected failure is one line, a bug is a traceback.

Expected failures are the ones a user causes or can fix: bad input (a recipe field, a corrupt or
truncated file, a missing path), a folder that can't be written, a full disk, a checkpoint of
another shape, an unreachable network. They print

    lmfoundry: error: <file or field>: <what is wrong> (<what was expected>)

and exit 2; the raiser writes that message (it knows the file). A diverged training run exits 3.
``--debug`` adds the traceback; anything else is a bug and keeps its traceback.

This module imports nothing of lmfoundry, so every layer may raise its exceptions.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

logger = logging.getLogger("lmfoundry")


class InputError(ValueError):
    """Bad input the user can fix; the message names the file, line or field and what was expected."""


class StageFailedError(RuntimeError):
    """A stage's work failed for a reason outside the input (a worker or cluster task died); its logs say more."""


class DivergedError(RuntimeError):
    """Training stopped after too many loss-spike rollbacks (exit 3); its checkpoints are intact."""


# OSError numbers that are the environment's fault, not a bug, with what the user should check.
_OS_ERRORS = {
    errno.ENOSPC: "no space left on device (free space or choose another output folder)",
    errno.EDQUOT: "disk quota exceeded (free space or choose another output folder)",
    errno.EROFS: "read-only file system (expected a writable output folder)",
    errno.EACCES: "permission denied (expected a readable input / writable output folder)",
    errno.EPERM: "operation not permitted (expected a readable input / writable output folder)",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory (expected a file)",
    errno.EEXIST: "already exists",
}
# Exception class names (anywhere in the cause chain) that mean the network or the Hub can't be reached.
_NETWORK_ERRORS = {
    "ConnectError", "ConnectTimeout", "ConnectionError", "ReadTimeout", "OfflineModeIsEnabled",
    "LocalEntryNotFoundError", "NameResolutionError", "MaxRetryError",
}


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def explain(err: BaseException) -> str | None:
    """The one-line message for an expected failure, or ``None`` when ``err`` is a bug."""
    for link in _chain(err):
        names = {cls.__name__ for cls in type(link).__mro__}
        if names & _NETWORK_ERRORS:
            return (f"cannot reach the network or the Hugging Face Hub: {link} "
                    "(expected network access, or local files: a model folder, --eval.data_dir, a local --input)")
    if isinstance(err, StageFailedError):
        return str(err)
    if isinstance(err, ValueError | FileExistsError | FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return _os_message(err) if isinstance(err, OSError) else str(err)
    if isinstance(err, OSError):
        if err.errno in _OS_ERRORS or isinstance(err, PermissionError):
            return _os_message(err)
        return None
    if isinstance(err, EOFError):
        return f"truncated input: {err} (expected a whole file; rerun with --debug to see which reader)"
    return None


def _os_message(err: OSError) -> str:
    """``PATH: what is wrong (what was expected)``, from an OSError whose text may lack the path."""
    if err.filename is None:
        return str(err)
    # the raiser's own words when it wrote some (a full disk with the size needed), else ours for the errno
    custom = err.strerror and err.errno is not None and err.strerror != os.strerror(err.errno)
    what = err.strerror if custom else _OS_ERRORS.get(err.errno or 0, err.strerror or str(err))
    return f"{err.filename}: {what}"


def run_verb(func: Callable[[], int | None], *, debug: bool = False) -> int:
    """Run one verb inside the boundary; return its exit code."""
    try:
        return int(func() or EXIT_OK)
    except KeyboardInterrupt:
        print("lmfoundry: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DivergedError as err:
        if debug:
            traceback.print_exc()
        print(f"lmfoundry: training stopped: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except Exception as err:
        message = explain(err)
        if message is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"lmfoundry: error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
