"""One process per output folder: a second one stops with one line naming the holder; a killed holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lmfoundry.cli import main
from lmfoundry.locks import FolderLockedError, folder_lock

HOLD = """
import sys
from lmfoundry.locks import folder_lock
with folder_lock(sys.argv[1], "lmfoundry train"):
    print("locked", flush=True)
    sys.stdin.read()  # hold until the test closes stdin or kills us
"""


@pytest.fixture
def holder(tmp_path):
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_second_process_is_refused_with_the_holder_named(holder, tmp_path, capsys):
    folder, proc = holder
    expected = rf"{folder}: in use by another lmfoundry process \(pid {proc.pid}, lmfoundry train, since "
    with pytest.raises(FolderLockedError, match=expected), folder_lock(folder, "test"):
        pass
    # every verb that writes a folder takes the same lock: here `data tokenize` on the held folder
    (tmp_path / "docs.txt").write_text("hello")
    assert main(["data", "tokenize", "--input", str(tmp_path / "docs.txt"), "--tokenizer", str(tmp_path / "tok"),
                 "--output", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"in use by another lmfoundry process (pid {proc.pid}" in err and "Traceback" not in err


def test_a_sigkilled_holder_never_blocks_the_next_run(holder):
    folder, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with folder_lock(folder, "next run") as locked:
        assert locked == folder


def test_a_failed_verb_leaves_no_folder_it_created(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["data", "tokenize", "--input", str(tmp_path / "missing.txt"), "--tokenizer", str(tmp_path),
                 "--output", str(out)]) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    from lmfoundry.atomic import replace_folder

    target, staged = tmp_path / "model", tmp_path / "model.tmp"
    target.mkdir()
    (target / "weights").write_text("old")
    staged.mkdir()
    (staged / "weights").write_text("new")
    replace_folder(staged, target)
    assert (target / "weights").read_text() == "new" and not staged.exists()
    assert not (tmp_path / "model.old").exists()
    # a staged folder that is missing (its copy failed) leaves the target as it was
    with pytest.raises(FileNotFoundError):
        replace_folder(tmp_path / "never-built", target)
    assert (target / "weights").read_text() == "new"
