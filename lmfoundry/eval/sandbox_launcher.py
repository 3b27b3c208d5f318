"""The privileged half of :mod:`lmfoundry.eval.sandbox`, run as its own interpreter.

The evaluation process is multi-threaded (torch, tokenizers), where ``preexec_fn`` can deadlock, so
every isolation step happens here instead: a fresh single-threaded ``python -I -S`` that reads a JSON
request on stdin, isolates itself, runs the program and writes one JSON status line to ``status_fd``.
Standard library only (it runs with ``-S``).

Two isolation levels:

* ``namespaces`` (root with CAP_SYS_ADMIN, the CI case): new mount, network, PID and IPC
  namespaces. ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/root``, ``/home`` and the caller's home and
  working directory are covered by empty tmpfs mounts; the interpreter (its base installation and,
  from a virtual environment, the environment too, wherever it lives) is bound back read-only; then
  every other mount is made read-only, so the program can write only in the fresh ``/tmp``, which
  vanishes with the namespace (a world-writable host folder such as ``/run/lock`` is no way out).
  The network namespace has no interfaces, and the program runs as a fresh unprivileged uid under
  a root init process (PID 1 of the namespace) whose exit makes the kernel kill everything the
  program left behind.
* ``process`` (fallback): a private temporary directory, resource limits, socket creation disabled
  in the interpreter, a process group killed as a whole; the uid is dropped when running as root
  and the interpreter is reachable by other users.

Both apply RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_CORE and a
clean environment, and run ``program.py`` through :func:`runner`, which proves two things to the
caller: that the interpreter started (it deletes a token file first; a file still there afterwards
means the program never ran, an ``error`` and not a ``failed``) and that the program ran to its end
(it prints the per-run token after the program returns, so ``exit()``, ``sys.exit(0)``, ``raise
SystemExit`` and ``os._exit(0)`` before the end are not passes).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import time

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE = 1024, 2048, 4096, 16384, 1 << 18
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
# per-mount flags a read-only bind remount must keep (the kernel resets the ones not passed)
MOUNT_OPTION_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}
PR_SET_PDEATHSIG = 1
NAMESPACE_WORKDIR = "/tmp/work"
HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/root", "/home")
TOKEN_FILE = ".lmfoundry-token"

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
"""

_RUNNER = """
def _lmfoundry_run():
    import _sitebuiltins, builtins, os, runpy, sys
    # the interpreter runs with -S (no site: ~40 ms less per program); exit and quit as site defines them
    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    with open({token_file!r}) as f:
        token = f.read()
    os.remove({token_file!r})
    runpy.run_path("program.py", run_name="__main__")
    sys.stdout.flush()
    os.write(1, ("\\n" + token + "\\n").encode())
_lmfoundry_run()
"""


def runner(guard: bool) -> str:
    """The ``python -I -S -c`` code that runs ``program.py`` in the working directory (standard
    library only, as HumanEval needs; no site-packages): it reads and
    deletes the token file (so the program cannot read it), runs the program as ``__main__`` and
    prints the token on a line of its own only if the program returned; with ``guard``, socket
    creation is disabled first (the process fallback has no network namespace)."""
    return (SOCKET_GUARD if guard else "") + _RUNNER.format(token_file=TOKEN_FILE)


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
    """What the program's interpreter needs to read: the base installation, the virtual environment
    it may run from (``sys.prefix``, e.g. ``/tmp/venv`` or the project's ``.venv``), and the folder
    of its binary, each as spelled and as resolved (a venv's ``bin/python`` is a symlink to the
    base's). Paths inside another listed path are dropped: binding the outer one covers them."""
    exe = sys.executable
    spelled = {sys.base_prefix, sys.prefix, os.path.dirname(exe), os.path.dirname(os.path.realpath(exe))}
    paths = {os.path.abspath(p) for p in spelled} | {os.path.realpath(p) for p in spelled}
    return sorted(p for p in paths if not any(p != q and _under(p, q) for q in paths))


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
    _make_read_only(except_under="/tmp")


def _mount_table() -> list[tuple[str, set[str]]]:
    """(mount point, per-mount options) of every mount this namespace sees, in mount order."""
    table = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            table.append((point, set(fields[5].split(","))))
    return table


def _make_read_only(except_under: str) -> None:
    """Remount every mount read-only (keeping its other flags) but those under ``except_under``:
    world-writable host folders that no tmpfs covers (``/run/lock``, a mounted volume's ``tmp``)
    must not keep what a program writes."""
    for point, options in _mount_table():
        if "ro" in options or _under(point, except_under) or not os.path.exists(point):
            continue
        flags = sum(flag for name, flag in MOUNT_OPTION_FLAGS.items() if name in options)
        _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


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
        os.execve(sys.executable, [sys.executable, "-I", "-S", "-c", runner(guard)], env)
    except BaseException as err:  # report anything, then die without running cleanup
        os.write(2, f"sandbox: could not start the program: {err!r}\n".encode())
    os._exit(126)


def _supervise(request: dict, workdir: str, uid: int | None, guard: bool) -> dict:
    """Run the program in a child and wait for it, killing it at the wall-clock timeout."""
    token_path = os.path.join(workdir, TOKEN_FILE)
    for name, text in (("program.py", request["program"]), (TOKEN_FILE, request["token"])):
        with open(os.path.join(workdir, name), "w", encoding="utf-8") as f:
            f.write(text)
        if uid is not None:
            os.chown(os.path.join(workdir, name), uid, uid)
    if uid is not None:
        os.chown(workdir, uid, uid)
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
    return {
        "returncode": os.waitstatus_to_exitcode(status),
        "timed_out": timed_out,
        "wall_s": wall,
        "started": not os.path.exists(token_path),
    }


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
