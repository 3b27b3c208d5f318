"""Every verb against careless and hostile input: one line naming the file or field, exit 2 (3 for divergence),
no earlier output changed (by checksum), no new partial output left behind.

Each row names a verb, how to break its input, and what the one line must say. Full disks and read-only folders
are real tmpfs mounts (tests/test_errors.py); planted model code is tests/test_trust.py.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_hub_fixtures import build_tiny_model
from test_tokenizer_fixtures import make_corpus, make_tokenizer

from lmfoundry.cli import main


def checksum(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` except the lock file, by relative path."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A good corpus, a tokenizer, shards and a model made once; each case works on copies of their paths."""
    root = tmp_path_factory.mktemp("matrix")
    docs = root / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in make_corpus(n_docs=120)))
    make_tokenizer(root / "tok", vocab_size=320)
    assert main(["data", "tokenize", "--input", str(docs), "--tokenizer", str(root / "tok"), "--output",
                 str(root / "shards"), "--workers", "1", "--val-fraction", "0.1", "--val-method", "documents"]) == 0
    build_tiny_model(root / "model")
    (root / "empty.txt").write_text("")
    (root / "no-docs").mkdir()
    (root / "no-docs" / "notes.csv").write_text("a,b\n")
    bad_json = root / "bad.jsonl"
    bad_json.write_text('{"text": "fine"}\n{"text": \n')
    cut = root / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(docs.read_bytes())[:-50])
    recipe = root / "recipe.yaml"
    recipe.write_text(f"run:\n  output: {root / 'run'}\n")
    return {"root": root, "docs": docs, "tok": root / "tok", "shards": root / "shards", "model": root / "model",
            "empty": root / "empty.txt", "no_docs": root / "no-docs", "bad_json": bad_json, "cut": cut,
            "recipe": recipe}


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[dict[str, Path], Path], list[str]]
    says: Callable[[dict[str, Path], Path], list[str]]  # what the one error line must contain
    keeps: str | None = None  # a folder of `world` that must stay bitwise as it was
    leaves_no: str | None = None  # a path under tmp that must not exist afterwards


CASES = [
    Case("tokenizer train: mistyped path",
         lambda w, t: ["tokenizer", "train", "--input", str(w["root"] / "docs.jsnol"), "--output", str(t / "tok"),
                       "--vocab-size", "320"],
         lambda w, t: [str(w["root"] / "docs.jsnol"), "not found"], leaves_no="tok"),
    Case("tokenizer train: empty file",
         lambda w, t: ["tokenizer", "train", "--input", str(w["empty"]), "--output", str(t / "tok"),
                       "--vocab-size", "320"],
         lambda w, t: ["no training text"], leaves_no="tok"),
    Case("tokenizer train: vocabulary the text can't reach",
         lambda w, t: ["tokenizer", "train", "--input", str(w["bad_json"].with_name("docs.jsonl")), "--output",
                       str(t / "tok"), "--vocab-size", "60000"],
         lambda w, t: ["docs.jsonl", "supports only", "60000"], leaves_no="tok"),
    Case("tokenizer train --overwrite with bad input keeps the old tokenizer",
         lambda w, t: ["tokenizer", "train", "--input", str(w["bad_json"]), "--output", str(w["tok"]),
                       "--vocab-size", "320", "--overwrite"],
         lambda w, t: [f"{w['bad_json']}:2", "not valid JSON"], keeps="tok"),
    Case("data tokenize: folder without documents",
         lambda w, t: ["data", "tokenize", "--input", str(w["no_docs"]), "--tokenizer", str(w["tok"]), "--output",
                       str(t / "shards")],
         lambda w, t: [str(w["no_docs"]), "holds no"], leaves_no="shards"),
    Case("data tokenize: truncated gzip",
         lambda w, t: ["data", "tokenize", "--input", str(w["cut"]), "--tokenizer", str(w["tok"]), "--output",
                       str(t / "shards"), "--workers", "1"],
         lambda w, t: [str(w["cut"]), "truncated or corrupt gzip"], leaves_no="shards"),
    Case("data tokenize --overwrite with failing input keeps the good shards",
         lambda w, t: ["data", "tokenize", "--input", str(w["bad_json"]), "--tokenizer", str(w["tok"]), "--output",
                       str(w["shards"]), "--workers", "1", "--overwrite"],
         lambda w, t: [f"{w['bad_json']}:2", "not valid JSON"], keeps="shards"),
    Case("data tokenize: shards of another tokenizer are refused",
         lambda w, t: ["data", "tokenize", "--input", str(w["docs"]), "--tokenizer", str(w["model"]), "--output",
                       str(w["shards"]), "--workers", "1"],
         lambda w, t: [str(w["shards"] / "manifest.json"), "--overwrite"], keeps="shards"),
    Case("data curate: missing input",
         lambda w, t: ["data", "curate", "--input", str(t / "nowhere"), "--output", str(t / "cur")],
         lambda w, t: [str(t / "nowhere")], leaves_no="cur"),
    Case("train: integer field given a fraction",
         lambda w, t: ["train", str(w["recipe"]), "--train.max_steps", "10.5", "--output", str(t / "train")],
         lambda w, t: ["train.max_steps", "expected an integer", "10.5"], leaves_no="train"),
    Case("train: bool field given a word",
         lambda w, t: ["train", str(w["recipe"]), "--train.max_steps", "2", "--shards", str(w["shards"]),
                       "--tokenizer", str(w["tok"]), "--model.tie_word_embeddings", "maybe", "--output", str(t / "train")],
         lambda w, t: ["model.tie_word_embeddings", "expected true or false"], leaves_no="train"),
    Case("train: mistyped field",
         lambda w, t: ["train", str(w["recipe"]), "--train.learning_rate", "1e-3"],
         lambda w, t: ["recipe section 'train'", "learning_rate", "allowed:"]),
    Case("eval: folder without weights",
         lambda w, t: ["eval", "--model", str(w["tok"]), "--tasks", "bpb", "--bpb-data", str(w["shards"]),
                       "--output", str(t / "ev" / "results.json")],
         lambda w, t: [str(w["tok"])], leaves_no="ev"),
    Case("eval: unknown task",
         lambda w, t: ["eval", "--model", str(w["model"]), "--tasks", "bpb,squad", "--output",
                       str(t / "ev" / "results.json")],
         lambda w, t: ["eval.tasks", "squad"], leaves_no="ev"),
    Case("push: bad repo id",
         lambda w, t: ["push", "--model", str(w["model"]), "--repo-id", "not a repo!", "--dry-run"],
         lambda w, t: ["not a repo!"], keeps="model"),
    Case("generate: missing model folder",
         lambda w, t: ["generate", "--model", str(t / "no-model"), "--prompt", "Hi"],
         lambda w, t: [str(t / "no-model")], leaves_no="no-model"),
    Case("run: a folder given as the recipe",
         lambda w, t: ["run", str(w["root"])],
         lambda w, t: [str(w["root"]), "is a folder"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, world, tmp_path, capsys):
    before = checksum(world[case.keeps]) if case.keeps else None
    assert main(case.argv(world, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("lmfoundry: error:")]
    assert len(lines) == 1, err
    for part in case.says(world, tmp_path):
        assert part in lines[0], (part, lines[0])
    if case.keeps:
        assert checksum(world[case.keeps]) == before
    if case.leaves_no:
        assert not (tmp_path / case.leaves_no).exists()


def test_a_locked_folder_is_refused_by_every_writing_verb(world, tmp_path, capsys):
    held = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from lmfoundry.locks import folder_lock\n"
         "with folder_lock(sys.argv[1], 'lmfoundry run'):\n    print('locked', flush=True); sys.stdin.read()",
         str(held)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        verbs = [
            ["tokenizer", "train", "--input", str(world["docs"]), "--output", str(held), "--vocab-size", "320"],
            ["data", "tokenize", "--input", str(world["docs"]), "--tokenizer", str(world["tok"]), "--output",
             str(held)],
            ["data", "curate", "--input", str(world["docs"]), "--output", str(held)],
            ["train", str(world["recipe"]), "--output", str(held)],
            ["eval", "--model", str(world["model"]), "--tasks", "bpb", "--output", str(held / "results.json")],
            ["run", str(world["recipe"]), "--run.output", str(held), "--train.max_steps", "1"],
        ]
        for argv in verbs:
            before = checksum(held)
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert f"{held}: in use by another lmfoundry process (pid {holder.pid}, lmfoundry run" in err, err
            assert checksum(held) == before
    finally:
        holder.kill()
        holder.wait()
