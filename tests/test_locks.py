"""One process per output folder: a second one stops with one line naming the holder; a killed holder frees it.

The refusals of every verb are rows of tests/test_bad_input_matrix.py; here: the lock itself, its re-entry
within one process, and the library entry points, which take the same lock as the commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_tokenizer_fixtures import make_corpus, make_tokenizer

from lmfoundry.locks import FolderLockedError, folder_lock

HOLD = """
import sys
from lmfoundry.locks import folder_lock
with folder_lock(sys.argv[1], "lmfoundry train"):
    print("locked", flush=True)
    sys.stdin.read()  # hold until the test closes stdin or kills us
"""

# The holder forks a worker that outlives it (datatrove and DataLoader workers are forked children).
HOLD_WITH_WORKER = """
import os, sys, time
from lmfoundry.locks import folder_lock
with folder_lock(sys.argv[1], "lmfoundry data curate"):
    if os.fork() == 0:  # the worker: it says its pid once the fork (and its at-fork hooks) are done
        print(os.getpid(), flush=True)
        time.sleep(600)  # killed by the test
        os._exit(0)
    sys.stdin.read()
"""

TRY = """
import sys
from lmfoundry.locks import folder_lock
try:
    with folder_lock(sys.argv[1], "second"):
        print("got it")
except Exception as err:
    print(err)
"""

# Every library entry point, each paused inside its lock on ROOT/<entry> in a thread of one process: the function
# it calls once it holds the folder waits (one process, so torch and transformers are imported once).
PAUSED = """
import importlib, json, sys, threading
root, entry_points = sys.argv[1], json.loads(sys.argv[2])
gate = threading.Event()
def paused(entry):
    def pause(*args, **kwargs):
        print("inside", entry, flush=True)
        gate.wait()
    return pause
for entry, module, inner, call in entry_points:
    mod = importlib.import_module(module)
    setattr(mod, inner, paused(entry))
    threading.Thread(target=eval, args=(call, vars(mod), {"folder": f"{root}/{entry}"}), daemon=True).start()
sys.stdin.read()
"""

# (entry point, its module, the function it calls inside the lock, a call on `folder`)
ENTRY_POINTS = [
    ("curate", "lmfoundry.data.curation.pipeline", "_curate", "curate(None, folder)"),
    ("tokenize_shards", "lmfoundry.data.shards.tokenize", "_tokenize_shards", "tokenize_shards(None, [], None, folder)"),
    ("build_tokenizer", "lmfoundry.tokenization.stage", "train_tokenizer",
     "build_tokenizer(TokenizerConfig(), [], folder, held_out_fraction=0.0)"),
    ("evaluate_model", "lmfoundry.eval.harness", "_evaluate", "evaluate_model(None, None, folder + '/results.json')"),
    ("push_to_hub", "lmfoundry.hub.push", "_push", "push_to_hub(folder, None)"),
]


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


def try_from_another_process(folder: Path) -> str:
    return subprocess.run([sys.executable, "-c", TRY, str(folder)], capture_output=True, text=True,
                          timeout=60).stdout.strip()


def test_a_second_process_is_refused_with_the_holder_named(holder):
    folder, proc = holder
    expected = rf"{folder}: in use by another lmfoundry process \(pid {proc.pid}, lmfoundry train, since "
    with pytest.raises(FolderLockedError, match=expected), folder_lock(folder, "test"):
        pass


def test_a_sigkilled_holder_never_blocks_the_next_run(holder):
    folder, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with folder_lock(folder, "next run") as locked:
        assert locked == folder


def test_a_forked_worker_that_outlives_its_killed_parent_does_not_keep_the_lock(tmp_path):
    folder = tmp_path / "cur"
    parent = subprocess.Popen([sys.executable, "-c", HOLD_WITH_WORKER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    try:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        os.kill(worker, 0)  # still running
        with folder_lock(folder, "the rerun") as locked:
            assert locked == folder
    finally:
        os.kill(worker, signal.SIGKILL)


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    """The CLI holds the folder and the library function it calls takes it again: one lock, held by the outer."""
    folder = tmp_path / "out"
    with folder_lock(folder, "lmfoundry data tokenize"):
        with folder_lock(tmp_path / "." / "out", "tokenize_shards"):  # another spelling of the same folder
            (folder / "shard.bin").write_bytes(b"x")
        refused = try_from_another_process(folder)  # the inner block ended; the outer still holds it
        assert f"{folder}: in use by another lmfoundry process (pid {os.getpid()}, lmfoundry data tokenize" in refused
    assert try_from_another_process(folder) == "got it"


def test_a_library_call_inside_a_held_lock_does_its_work(tmp_path):
    """A user's script (or the CLI) holding the folder, then the real library entry point on it."""
    from lmfoundry.data.shards import TokenizeConfig, tokenize_shards

    docs = tmp_path / "docs.txt"
    docs.write_text("\n\n".join(make_corpus(n_docs=40)))
    make_tokenizer(tmp_path / "tok", vocab_size=300)
    out = tmp_path / "shards"
    with folder_lock(out, "my script"):
        manifest = tokenize_shards(TokenizeConfig(workers=1, val_fraction=0.0), [docs], tmp_path / "tok", out,
                                   show_progress=False)
    assert manifest["splits"]["train"]["tokens"] > 0 and (out / "manifest.json").is_file()


def test_two_processes_calling_a_library_entry_point_on_one_folder(tmp_path):
    """curate, tokenize_shards, build_tokenizer, evaluate_model and push_to_hub lock their folder themselves: a
    second process calling one on the same folder is refused with one line naming the folder and the holder."""
    import importlib

    for entry, *_ in ENTRY_POINTS:
        (tmp_path / entry).mkdir()  # push writes into a model folder that must exist
    first = subprocess.Popen([sys.executable, "-c", PAUSED, str(tmp_path), json.dumps(ENTRY_POINTS)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        inside = {first.stdout.readline().split()[-1] for _ in ENTRY_POINTS}
        assert inside == {entry for entry, *_ in ENTRY_POINTS}
        for entry, module, _, call in ENTRY_POINTS:
            folder = tmp_path / entry
            with pytest.raises(FolderLockedError) as refused:
                eval(call, vars(importlib.import_module(module)), {"folder": str(folder)})
            line = str(refused.value)
            assert "\n" not in line
            assert line.startswith(f"{folder}: in use by another lmfoundry process (pid {first.pid}, {entry}, since ")
    finally:
        first.kill()
        first.wait()


def test_a_folder_is_replaced_whole_or_not_at_all_and_keeps_its_lock(tmp_path):
    from lmfoundry.atomic import replace_folder

    target, staged = tmp_path / "model", tmp_path / "model.tmp"
    target.mkdir()
    (target / "weights").write_text("old")
    staged.mkdir()
    (staged / "weights").write_text("new")
    with folder_lock(target, "lmfoundry run"):
        replace_folder(staged, target)
        assert (target / "weights").read_text() == "new" and not staged.exists()
        assert not (tmp_path / "model.old").exists()
        # the new folder's lock file is the one this process holds: another process is still refused
        assert f"pid {os.getpid()}, lmfoundry run" in try_from_another_process(target)
    # a staged folder that is missing (its copy failed) leaves the target as it was
    with pytest.raises(FileNotFoundError):
        replace_folder(tmp_path / "never-built", target)
    assert (target / "weights").read_text() == "new"
