"""The privileged half of :mod:`lmfoundry.eval.sandbox`, run as its own interpreter.

The evaluation process is multi-threaded (torch, tokenizers), where ``preexec_fn`` can deadlock, so
every isolation step happens here instead: a fresh single-threaded ``python -I -S`` that reads a JSON
request on stdin, isolates itself, runs the program and writes one JSON status line to ``status_fd``.
Standard library only (it runs with ``-S``).

Two isolation levels:

* ``namespaces`` (root with CAP_SYS_ADMIN, the CI case): new mount, network, PID and IPC
  namespaces. ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/root``, ``/home`` and the caller's home and
  working directory are covered by empty tmpfs mounts (the interpreter is bound back read-only when
  it lives under one of them), the network namespace has no interfaces, and the program runs as a
  fresh unprivileged uid under a root init process (PID 1 of the namespace) whose exit makes the
  kernel kill everything the program left behind.
* ``process`` (fallback): a private temporary directory, resource limits, socket creation disabled
  in the interpreter, a process group killed as a whole; the uid is dropped when running as root
  and the interpreter is reachable by other users.

Both apply RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_CORE and a
clean environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
NAMESPACE_WORKDIR = "/tmp/work"
HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/root", "/home")

# Process-level fallback when no network namespace can be made: no socket can be created at all.
SOCKET_GUARD = """
import socket as _s, _socket as _cs
def _no_network(*args, **kwargs):
    raise PermissionError("network access is disabled in the sandbox")
for _m in (_s, _cs):
    for _n in ("socket", "socketpair", "create_connection", "create_server", "fromfd", "getaddrinfo"):
        if hasattr(_m, _n):
            setattr(_m, _n, _no_network)
del _s, _cs, _m, _n
import runpy as _runpy
_runpy.run_path("program.py", run_name="__main__")
"""

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if x is None else x.encode() for x in (source, target, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _interpreter_paths() -> list[str]:
    """What the program's interpreter needs to read: its prefix and the directory of its binary."""
    exe_dir = os.path.dirname(os.path.realpath(sys.executable))
    return sorted({os.path.realpath(sys.base_prefix), exe_dir})


def _private_ancestor(path: str) -> str | None:
    """Highest ancestor of ``path`` that other users cannot traverse (e.g. ``/root``), if any."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        ancestor = "/" + "/".join(parts[:i])
        if not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


def interpreter_reachable() -> bool:
    return all(_private_ancestor(p) is None for p in _interpreter_paths())


def _isolate_filesystem(request: dict) -> None:
    """In a fresh mount namespace: cover the caller's directories with tmpfs, keep the interpreter."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    keep = _interpreter_paths()
    keep_fds = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in keep}
    candidates = [*HIDDEN_DIRS, request.get("caller_home") or "", request.get("caller_cwd") or ""]
    candidates += [a for a in map(_private_ancestor, keep) if a]
    hidden: list[str] = []
    for path in sorted({os.path.realpath(c) for c in candidates if c}, key=len):
        if path != "/" and os.path.isdir(path) and not any(_under(path, h) for h in hidden):
            hidden.append(path)
    tmp_size = int(request["limits"]["max_file_bytes"]) * 4 + (8 << 20)
    for path in hidden:
        options = f"size={tmp_size},mode=1777" if path == "/tmp" else "size=1m,mode=755"
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)
        for kept in keep:
            if _under(kept, path):
                os.makedirs(kept, exist_ok=True)
                _mount(f"/proc/self/fd/{keep_fds[kept]}", kept, None, MS_BIND | MS_REC)
                _mount(None, kept, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for fd in keep_fds.values():
        os.close(fd)


def _set_limits(limits: dict) -> None:
    cpu = int(limits["cpu_s"])
    for res, value in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (limits["memory_bytes"],) * 2),
        (resource.RLIMIT_NPROC, (limits["max_processes"],) * 2),
        (resource.RLIMIT_FSIZE, (limits["max_file_bytes"],) * 2),
        (resource.RLIMIT_NOFILE, (256, 256)),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(res, value)


def _tasks_of_uid(uid: int) -> int:
    """Processes and threads owned by ``uid`` (RLIMIT_NPROC counts these per user)."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return count


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of a sandbox-only uid: catches children that left the process group."""
    if uid == 0:
        return
    for _ in range(3):
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                continue


def _exec_program(request: dict, workdir: str, uid: int | None, guard: bool) -> None:
    """In the forked child: drop privileges, apply limits, exec the interpreter on program.py."""
    try:
        os.setpgid(0, 0)
        os.chdir(workdir)
        limits = dict(request["limits"])
        if uid is None:  # same user as the caller: the per-user process limit counts its tasks too
            limits["max_processes"] += _tasks_of_uid(os.getuid())
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.closerange(3, 65536)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _set_limits(limits)
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        argv = [sys.executable, "-I", "-c", SOCKET_GUARD] if guard else [sys.executable, "-I", "program.py"]
        os.execve(sys.executable, argv, env)
    except BaseException as err:  # report anything, then die without running cleanup
        os.write(2, f"sandbox: could not start the program: {err!r}\n".encode())
    os._exit(126)


def _supervise(request: dict, workdir: str, uid: int | None, guard: bool) -> dict:
    """Run the program in a child and wait for it, killing it at the wall-clock timeout."""
    with open(os.path.join(workdir, "program.py"), "w", encoding="utf-8") as f:
        f.write(request["program"])
    if uid is not None:
        os.chown(workdir, uid, uid)
        os.chown(os.path.join(workdir, "program.py"), uid, uid)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _exec_program(request, workdir, uid, guard)
    deadline = start + float(request["limits"]["timeout_s"])
    timed_out, status = False, None
    while status is None:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            status = wait_status
        elif time.monotonic() > deadline:
            timed_out = True
            os.killpg(pid, signal.SIGKILL)
            status = os.waitpid(pid, 0)[1]
        else:
            time.sleep(0.005)
    wall = time.monotonic() - start
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # whatever the program left running in its group
    if uid is not None:
        _kill_uid(uid)
    return {"returncode": os.waitstatus_to_exitcode(status), "timed_out": timed_out, "wall_s": wall}


def _run_in_namespaces(request: dict) -> dict | None:
    """Namespace isolation; None when the kernel refuses the namespaces (not root, no CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or _libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC) != 0:
        return None
    try:
        _isolate_filesystem(request)
        os.makedirs(NAMESPACE_WORKDIR, mode=0o700)
    except OSError as err:  # e.g. a container that allows unshare but not mounts
        os.write(2, f"sandbox: namespace setup failed ({err}); falling back to process isolation\n".encode())
        return None
    read_fd, write_fd = os.pipe()
    init = os.fork()
    if init == 0:  # PID 1 of the new namespace: its exit kills every process left in it
        try:
            os.close(read_fd)
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            result = _supervise(request, NAMESPACE_WORKDIR, int(request["uid"]), guard=False)
            os.write(write_fd, json.dumps(result).encode())
        except BaseException as err:
            os.write(2, f"sandbox: init failed: {err!r}\n".encode())
            os._exit(1)
        os._exit(0)
    os.close(write_fd)
    os.waitpid(init, 0)
    with os.fdopen(read_fd, "rb") as f:
        payload = f.read()
    if not payload:
        return {"returncode": -1, "timed_out": False, "wall_s": 0.0, "error": "sandbox init failed"}
    return json.loads(payload)


def _run_in_process(request: dict) -> dict:
    """Fallback isolation without namespaces."""
    if os.geteuid() == 0 and not interpreter_reachable():
        # root ignores RLIMIT_NPROC and owns the caller's files: never run generated code as root
        return {
            "returncode": -1,
            "timed_out": False,
            "wall_s": 0.0,
            "error": f"refusing to run as root: no namespaces, and the interpreter under "
            f"{_interpreter_paths()[0]} is not reachable by an unprivileged uid",
        }
    uid = int(request["uid"]) if os.geteuid() == 0 else None
    workdir = tempfile.mkdtemp(prefix="lmfoundry-sandbox-")
    try:
        return _supervise(request, workdir, uid, guard=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    request = json.loads(sys.stdin.read())
    status_fd = int(request["status_fd"])
    result = None
    if request.get("isolation", "auto") in ("auto", "namespaces"):
        result = _run_in_namespaces(request)
        if result is not None:
            result["isolation"] = "namespaces"
        elif request.get("isolation") == "namespaces":
            result = {"returncode": -1, "timed_out": False, "wall_s": 0.0, "error": "namespaces unavailable"}
    if result is None:
        result = _run_in_process(request)
        result["isolation"] = "process"
    os.write(status_fd, json.dumps(result).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
