"""The sandbox contains hostile generated programs: each is stopped or refused, counts as a failure,
and the caller (its files, its environment, its process) is untouched while the batch goes on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from lmfoundry.eval.sandbox import Sandbox, SandboxLimits
from lmfoundry.eval.sandbox_launcher import SOCKET_GUARD, interpreter_reachable

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
    done = subprocess.run(
        [sys.executable, "-I", "-c", SOCKET_GUARD], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1 and "network access is disabled in the sandbox" in done.stderr


def test_bad_isolation_name_is_rejected():
    with pytest.raises(ValueError, match="isolation"):
        Sandbox(isolation="docker")
