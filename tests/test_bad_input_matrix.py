"""Every verb against careless and hostile input, in one table.

Each row names a verb, how its input is broken (empty, missing, truncated, wrong type, locked by another
process, a changed recipe on resume, planted model code, a full disk, a read-only folder) and what the one
error line must say. Every row gets the same four checks:

- the exit code (2, or 3 for divergence);
- exactly one ``lmfoundry: error:`` line, naming the file or field, and no traceback;
- no earlier output changed: every file of the module's earlier outputs and of the row's own folder has the
  checksum it had before (lock files aside: a refused verb may leave ``.lock`` in a folder that existed);
- no new partial output: no file or folder appeared anywhere in them.

A row may name the few files its verb legitimately writes before it fails (the full disk during a resumed
training run appends the rows of the steps it did train, and says why); a row still to fix is a strict xfail
naming what is wrong, so fixing it turns the row red until its mark is removed.

Full disks and read-only folders are real tmpfs mounts (skipped with the reason where mounting is not
allowed); the lock holder is a real second process.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from test_hub_fixtures import build_tiny_model
from test_tokenizer_fixtures import make_corpus, make_tokenizer

from lmfoundry.cli import main
from lmfoundry.data.default_corpus import bible_jsonl_path

MODEL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "max_position_embeddings": 64}
PLANTED_MARK = "planted-code-ran"  # the planted code would create this file in the world folder

HOLD = """
import sys
from lmfoundry.locks import folder_lock
with folder_lock(sys.argv[1], "lmfoundry train"):
    print("locked", flush=True)
    sys.stdin.read()  # hold until the test kills us
"""


@contextmanager
def tmpfs(path: Path, *, size: str = "1m", read_only: bool = False,
          fill: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """A real tmpfs at ``path`` (``fill`` writes into it first; ``read_only`` remounts it read-only then)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'}); needs root and mount rights")
    try:
        if fill is not None:
            fill(path)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """The earlier outputs, made once: a corpus, a tokenizer, shards, a curation, a model, a trained run,
    a model folder with planted code and one with truncated weights, and broken inputs of every kind."""
    root = tmp_path_factory.mktemp("matrix")
    docs = root / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in make_corpus(n_docs=120)))
    make_tokenizer(root / "tok", vocab_size=320)
    assert main(["data", "tokenize", "--input", str(docs), "--tokenizer", str(root / "tok"), "--output",
                 str(root / "shards"), "--workers", "1", "--val-fraction", "0.1", "--val-method", "documents"]) == 0
    verses = [json.loads(line)["text"] for line in bible_jsonl_path().read_text().splitlines()[:480]]
    english = root / "verses.jsonl"  # the curation filters keep English prose (make_corpus is made-up words)
    english.write_text("".join(json.dumps({"text": " ".join(verses[i:i + 8])}) + "\n" for i in range(0, 480, 8)))
    assert main(["data", "curate", "--input", str(english), "--output", str(root / "cur"), "--workers", "1",
                 "--tasks", "1", "--data.progress", "false"]) == 0
    build_tiny_model(root / "model")
    train_recipe = root / "train.yaml"
    train_recipe.write_text(yaml.safe_dump({"model": MODEL, "train": {
        "shards": str(root / "shards"), "tokenizer": str(root / "tok"), "seq_len": 32, "micro_batch_size": 4,
        "global_batch_size": 8, "max_steps": 4, "lr": 3e-3, "warmup_steps": 1, "checkpoint_every": 2,
        "keep_last": 5, "eval_every": 0, "report_to": "none", "sample_prompts": [], "seed": 3}}))
    assert main(["train", str(train_recipe), "--output", str(root / "run")]) == 0
    foreign = root / "foreign"  # a folder whose model_type is not Foundry, with code appended that marks it ran
    shutil.copytree(root / "model", foreign)
    config = json.loads((foreign / "config.json").read_text())
    (foreign / "config.json").write_text(json.dumps({**config, "model_type": "not-foundry"}))
    with open(foreign / "modeling_foundry.py", "a", encoding="utf-8") as f:
        f.write(f"\nopen({str(root / PLANTED_MARK)!r}, 'w').write('ran')\n")
    cut_model = root / "cut-model"
    shutil.copytree(root / "model", cut_model)
    weights = (cut_model / "model.safetensors").read_bytes()
    (cut_model / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (root / "empty.txt").write_text("")
    (root / "no-docs").mkdir()
    (root / "no-docs" / "notes.csv").write_text("a,b\n")
    bad_json = root / "bad.jsonl"
    bad_json.write_text('{"text": "fine"}\n{"text": \n')
    cut = root / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(docs.read_bytes())[:-50])
    big = root / "big.jsonl"
    big.write_text("".join(json.dumps({"text": t}) + "\n" for t in make_corpus(n_docs=3000, seed=2)))
    recipe = root / "recipe.yaml"
    recipe.write_text(f"run:\n  output: {root / 'default-run'}\ntrain:\n  max_steps: 2\n")
    listed = root / "list.yaml"
    listed.write_text("- data\n- train\n")
    return {"root": root, "docs": docs, "tok": root / "tok", "shards": root / "shards", "cur": root / "cur",
            "model": root / "model", "run": root / "run", "train": train_recipe, "foreign": foreign,
            "cut_model": cut_model, "empty": root / "empty.txt", "no_docs": root / "no-docs", "bad_json": bad_json,
            "cut": cut, "big": big, "recipe": recipe, "list": listed}


@dataclass
class Env:
    """What a row's lambdas see: the earlier outputs, the row's own folder, and the lock holder's pid."""

    w: dict[str, Path]
    t: Path
    pid: int | None = None


@contextmanager
def held(folder: Callable[[Env], Path], env: Env) -> Iterator[None]:
    """A second process holding ``folder``'s lock for the row."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder(env))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        env.pid = proc.pid
        yield
    finally:
        proc.kill()
        proc.wait()


def locked(folder: Callable[[Env], Path]) -> Callable[[Env], AbstractContextManager]:
    return lambda e: held(folder, e)


def holder_named(folder: Callable[[Env], Path]) -> Callable[[Env], list[str]]:
    return lambda e: [f"{folder(e)}: in use by another lmfoundry process (pid {e.pid}, lmfoundry train, since"]


def read_only(fill: Callable[[Env, Path], None] | None = None) -> Callable[[Env], AbstractContextManager]:
    return lambda e: tmpfs(e.t / "ro", read_only=True, fill=(lambda p: fill(e, p)) if fill else None)


def copy_model(e: Env, into: Path) -> None:
    shutil.copytree(e.w["model"], into / "model")


def full_for_the_next_checkpoint(e: Env) -> AbstractContextManager:
    """A tmpfs holding a copy of the 4-step run with room for less than one more checkpoint."""
    one = tree_size(e.w["run"] / "checkpoints" / "step-4")
    size = tree_size(e.w["run"]) + one // 2
    return tmpfs(e.t / "small", size=f"{size // 1024 + 8}k", fill=lambda p: shutil.copytree(e.w["run"], p / "run"))


def then_resume_from_a_copy(e: Env) -> None:
    """The earlier checkpoint stays usable: the run, moved off the full disk, resumes and finishes."""
    moved = e.t / "moved"
    shutil.copytree(e.t / "small" / "run", moved, ignore=shutil.ignore_patterns(".lock"))
    assert main(["train", str(e.w["train"]), "--output", str(moved), "--train.max_steps", "8", "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (moved / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert sorted(set(steps)) == list(range(1, 9))
    shutil.rmtree(moved)


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Env], list[str]]
    says: Callable[[Env], list[str]]  # what the one error line must contain
    prepare: Callable[[Env], AbstractContextManager] = lambda e: nullcontext()
    code: int = 2
    grows: tuple[str, ...] = ()  # files under the row's folder that may grow (the log of steps it did run)
    updates: tuple[str, ...] = ()  # files under the row's folder the verb may write or rewrite (say why in the row)
    then: Callable[[Env], None] | None = None  # a check of the row's own, after the four


def tok_train(*extra: str) -> Callable[[Env], list[str]]:
    return lambda e: ["tokenizer", "train", "--vocab-size", "320", *[_fill(x, e) for x in extra]]


def tokenize(*extra: str) -> Callable[[Env], list[str]]:
    return lambda e: ["data", "tokenize", "--tokenizer", str(e.w["tok"]), "--workers", "1",
                      *[_fill(x, e) for x in extra]]


def curate(*extra: str) -> Callable[[Env], list[str]]:
    return lambda e: ["data", "curate", "--workers", "1", "--tasks", "1", "--data.progress", "false",
                      *[_fill(x, e) for x in extra]]


def verb(*words: str) -> Callable[[Env], list[str]]:
    return lambda e: [_fill(x, e) for x in words]


def says(*parts: str) -> Callable[[Env], list[str]]:
    return lambda e: [_fill(x, e) for x in parts]


def _fill(text: str, e: Env) -> str:
    """``{w.NAME}`` is an earlier output's path, ``{t}`` the row's own folder."""
    return text.format(t=e.t, w=_Paths(e.w))


class _Paths:
    def __init__(self, paths: dict[str, Path]) -> None:
        self.__dict__.update({k: str(v) for k, v in paths.items()})


CASES = [
    # ---- run ------------------------------------------------------------------------------------------
    Case("run: missing recipe", verb("run", "{t}/nope.yaml"), says("{t}/nope.yaml")),
    Case("run: a folder as the recipe (wrong type)", verb("run", "{w.root}"), says("{w.root}", "is a folder")),
    Case("run: a recipe that is a list (wrong type)", verb("run", "{w.list}"), says("{w.list}", "mapping")),
    Case("run: missing input", verb("run", "{w.recipe}", "--run.output", "{t}/run", "--data.inputs", "{t}/nowhere"),
         says("{t}/nowhere")),
    Case("run: empty input", verb("run", "{w.recipe}", "--run.output", "{t}/run", "--data.inputs", "{w.empty}"),
         says("{w.empty}", "empty")),
    Case("run: locked run folder", verb("run", "{w.recipe}", "--run.output", "{t}/held"),
         holder_named(lambda e: e.t / "held"), prepare=locked(lambda e: e.t / "held")),
    Case("run: read-only folder", verb("run", "{w.recipe}", "--run.output", "{t}/ro/run"), says("{t}/ro"),
         prepare=read_only()),
    # ---- train ----------------------------------------------------------------------------------------
    Case("train: integer field given a fraction",
         verb("train", "{w.train}", "--train.max_steps", "10.5", "--output", "{t}/train"),
         says("train.max_steps", "expected an integer", "10.5")),
    Case("train: bool field given a word",
         verb("train", "{w.train}", "--model.tie_word_embeddings", "maybe", "--output", "{t}/train"),
         says("model.tie_word_embeddings", "expected true or false")),
    Case("train: mistyped field", verb("train", "{w.recipe}", "--train.learning_rate", "1e-3"),
         says("recipe section 'train'", "learning_rate", "allowed:")),
    Case("train: missing shards", verb("train", "{w.train}", "--train.shards", "{t}/nowhere", "--output", "{t}/tr"),
         says("train.shards", "{t}/nowhere")),
    Case("train: a shards folder without shards",
         verb("train", "{w.train}", "--train.shards", "{w.no_docs}", "--output", "{t}/tr"),
         says("{w.no_docs}/manifest.json")),
    Case("train: locked run folder", verb("train", "{w.train}", "--output", "{w.run}", "--train.max_steps", "6"),
         holder_named(lambda e: e.w["run"]), prepare=locked(lambda e: e.w["run"])),
    Case("train: changed recipe on resume",
         verb("train", "{w.train}", "--output", "{w.run}", "--train.max_steps", "6", "--train.lr", "0.01"),
         says("resuming with a recipe that changes results: train.lr: 0.003 -> 0.01", "--force-recipe-change",
              "{w.run}/recipe.yaml")),
    Case("train: read-only folder", verb("train", "{w.train}", "--output", "{t}/ro/run"), says("{t}/ro"),
         prepare=read_only()),
    Case("train: full disk at the next checkpoint",
         verb("train", "{w.train}", "--output", "{t}/small/run", "--train.max_steps", "8"),
         says("no space left on device (needed about", "{t}/small/run"), prepare=full_for_the_next_checkpoint,
         grows=("small/run/metrics.jsonl", "small/run/train.log"),
         # the resume records its recipe (max_steps 4 -> 8) before it trains, and steps 5-6 showed no spike, so the
         # step-4 checkpoint is marked clean (a marker beside its files, which stay as they were)
         updates=("small/run/recipe.yaml", "small/run/checkpoints/step-4/CLEAN"),
         then=then_resume_from_a_copy),
    # ---- data curate ----------------------------------------------------------------------------------
    Case("data curate: missing input", curate("--input", "{t}/nowhere", "--output", "{t}/cur"), says("{t}/nowhere")),
    Case("data curate: empty input", curate("--input", "{w.empty}", "--output", "{t}/cur"), says("{w.empty}", "empty")),
    Case("data curate: a folder without documents", curate("--input", "{w.no_docs}", "--output", "{t}/cur"),
         says("{w.no_docs}", "no readable files")),
    Case("data curate: integer field given a fraction",
         verb("data", "curate", "--input", "{w.docs}", "--output", "{t}/cur", "--workers", "1.5"),
         says("data.workers", "expected an integer")),
    Case("data curate --overwrite with failing input keeps the earlier curation",
         curate("--input", "{w.empty}", "--output", "{w.cur}", "--overwrite"), says("{w.empty}")),
    Case("data curate: locked output", curate("--input", "{w.docs}", "--output", "{w.cur}", "--overwrite"),
         holder_named(lambda e: e.w["cur"]), prepare=locked(lambda e: e.w["cur"])),
    Case("data curate: read-only folder", curate("--input", "{w.docs}", "--output", "{t}/ro/out"),
         says("{t}/ro", "read-only"), prepare=read_only()),
    # ---- data tokenize --------------------------------------------------------------------------------
    Case("data tokenize: missing input", tokenize("--input", "{t}/nowhere.jsonl", "--output", "{t}/shards"),
         says("{t}/nowhere.jsonl", "not found")),
    Case("data tokenize: empty input", tokenize("--input", "{w.empty}", "--output", "{t}/shards"),
         says("{w.empty}", "no training documents")),
    Case("data tokenize: a folder without documents", tokenize("--input", "{w.no_docs}", "--output", "{t}/shards"),
         says("{w.no_docs}", "holds no")),
    Case("data tokenize: truncated gzip", tokenize("--input", "{w.cut}", "--output", "{t}/shards"),
         says("{w.cut}", "truncated or corrupt gzip")),
    Case("data tokenize: float field given a word",
         tokenize("--input", "{w.docs}", "--output", "{t}/shards", "--val-fraction", "lots"),
         says("tokenize.val_fraction", "lots")),
    Case("data tokenize: missing tokenizer",
         verb("data", "tokenize", "--input", "{w.docs}", "--tokenizer", "{t}/notok", "--output", "{t}/shards"),
         says("{t}/notok")),
    Case("data tokenize --overwrite with failing input keeps the good shards",
         tokenize("--input", "{w.bad_json}", "--output", "{w.shards}", "--overwrite"),
         says("{w.bad_json}:2", "not valid JSON")),
    Case("data tokenize: shards of another tokenizer are refused",
         verb("data", "tokenize", "--input", "{w.docs}", "--tokenizer", "{w.model}", "--output", "{w.shards}",
              "--workers", "1"),
         says("{w.shards}/manifest.json", "--overwrite")),
    Case("data tokenize: locked output", tokenize("--input", "{w.docs}", "--output", "{w.shards}", "--overwrite"),
         holder_named(lambda e: e.w["shards"]), prepare=locked(lambda e: e.w["shards"])),
    Case("data tokenize: read-only folder", tokenize("--input", "{w.docs}", "--output", "{t}/ro/out"),
         says("{t}/ro", "read-only"), prepare=read_only()),
    Case("data tokenize: full disk", tokenize("--input", "{w.big}", "--output", "{t}/small/shards"),
         says("no space left on device", "{t}/small"), prepare=lambda e: tmpfs(e.t / "small", size="64k")),
    # ---- tokenizer train ------------------------------------------------------------------------------
    Case("tokenizer train: mistyped path", tok_train("--input", "{w.root}/docs.jsnol", "--output", "{t}/tok"),
         says("{w.root}/docs.jsnol", "not found")),
    Case("tokenizer train: empty file", tok_train("--input", "{w.empty}", "--output", "{t}/tok"),
         says("{w.empty}", "no training text")),
    Case("tokenizer train: truncated gzip", tok_train("--input", "{w.cut}", "--output", "{t}/tok"),
         says("{w.cut}", "truncated or corrupt gzip")),
    Case("tokenizer train: integer field given a fraction",
         verb("tokenizer", "train", "--input", "{w.docs}", "--output", "{t}/tok", "--vocab-size", "10.5"),
         says("tokenizer.vocab_size", "expected an integer")),
    Case("tokenizer train: a vocabulary the text can't reach",
         verb("tokenizer", "train", "--input", "{w.docs}", "--output", "{t}/tok", "--vocab-size", "60000"),
         says("{w.docs}", "supports only", "60000")),
    Case("tokenizer train --overwrite with bad input keeps the old tokenizer",
         tok_train("--input", "{w.bad_json}", "--output", "{w.tok}", "--overwrite"),
         says("{w.bad_json}:2", "not valid JSON")),
    Case("tokenizer train: locked output", tok_train("--input", "{w.docs}", "--output", "{w.tok}", "--overwrite"),
         holder_named(lambda e: e.w["tok"]), prepare=locked(lambda e: e.w["tok"])),
    Case("tokenizer train: read-only folder", tok_train("--input", "{w.docs}", "--output", "{t}/ro/out"),
         says("{t}/ro", "read-only"), prepare=read_only()),
    Case("tokenizer train: full disk", tok_train("--input", "{w.docs}", "--output", "{t}/small/tok"),
         says("no space left on device", "{t}/small"), prepare=lambda e: tmpfs(e.t / "small", size="8k")),
    # ---- eval --output --------------------------------------------------------------------------------
    Case("eval: missing model folder",
         verb("eval", "--model", "{t}/no-model", "--tasks", "bpb", "--bpb-data", "{w.shards}", "--output",
              "{t}/ev/results.json"),
         says("{t}/no-model")),
    Case("eval: a folder without weights",
         verb("eval", "--model", "{w.tok}", "--tasks", "bpb", "--bpb-data", "{w.shards}", "--output",
              "{t}/ev/results.json"),
         says("{w.tok}")),
    Case("eval: truncated weights",
         verb("eval", "--model", "{w.cut_model}", "--tasks", "bpb", "--bpb-data", "{w.shards}", "--output",
              "{t}/ev/results.json"),
         says("{w.cut_model}/model.safetensors", "truncated")),
    Case("eval: unknown task",
         verb("eval", "--model", "{w.model}", "--tasks", "bpb,squad", "--output", "{t}/ev/results.json"),
         says("eval.tasks", "squad")),
    Case("eval: planted model code",
         verb("eval", "--model", "{w.foreign}", "--tasks", "bpb", "--bpb-data", "{w.shards}", "--output",
              "{t}/ev/results.json"),
         says("{w.foreign}", "--trust-remote-code")),
    Case("eval: locked output folder",
         verb("eval", "--model", "{w.model}", "--tasks", "bpb", "--bpb-data", "{w.shards}", "--output",
              "{t}/held/results.json"),
         holder_named(lambda e: e.t / "held"), prepare=locked(lambda e: e.t / "held")),
    Case("eval: read-only output folder",
         verb("eval", "--model", "{w.model}", "--tasks", "bpb", "--bpb-data", "{w.shards}", "--output",
              "{t}/ro/results.json"),
         says("{t}/ro"), prepare=read_only()),
    # ---- push -----------------------------------------------------------------------------------------
    Case("push: bad repo id", verb("push", "--model", "{w.model}", "--repo-id", "not a repo!", "--dry-run"),
         says("not a repo!")),
    Case("push: missing model folder", verb("push", "--model", "{t}/no-model", "--repo-id", "alice/x", "--dry-run"),
         says("{t}/no-model", "no such folder")),
    Case("push: truncated weights", verb("push", "--model", "{w.cut_model}", "--repo-id", "alice/x", "--dry-run"),
         says("{w.cut_model}/model.safetensors", "truncated")),
    Case("push: locked model folder", verb("push", "--model", "{w.model}", "--repo-id", "alice/x", "--dry-run"),
         holder_named(lambda e: e.w["model"]), prepare=locked(lambda e: e.w["model"])),
    Case("push: read-only model folder",
         verb("push", "--model", "{t}/ro/model", "--repo-id", "alice/x", "--dry-run"),
         says("{t}/ro/model", "read-only"), prepare=read_only(copy_model)),
    # ---- generate, chat -------------------------------------------------------------------------------
    Case("generate: missing model folder", verb("generate", "--model", "{t}/no-model", "--prompt", "Hi"),
         says("{t}/no-model")),
    Case("generate: truncated weights",
         verb("generate", "--model", "{w.cut_model}", "--prompt", "Hi", "--device", "cpu"),
         says("{w.cut_model}/model.safetensors", "truncated")),
    Case("generate: integer field given a fraction",
         verb("generate", "--model", "{w.model}", "--prompt", "Hi", "--max-new-tokens", "1.5"),
         says("generate.max_new_tokens", "expected an integer")),
    Case("generate: planted model code",
         verb("generate", "--model", "{w.foreign}", "--prompt", "In the", "--device", "cpu"),
         says("{w.foreign}", "--trust-remote-code")),
    Case("chat: missing model folder", verb("chat", "--model", "{t}/no-model"), says("{t}/no-model")),
    Case("chat: planted model code", verb("chat", "--model", "{w.foreign}", "--device", "cpu"),
         says("{w.foreign}", "--trust-remote-code")),
]


def snapshot(*roots: Path) -> dict[str, str]:
    """A checksum of every file and a mark for every folder under ``roots``, lock files left out."""
    seen: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.name != ".lock":
                seen[str(path)] = "folder" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


def error_line(err: str) -> str:
    """The one error line (a progress bar may share it: tqdm redraws with \\r), and no traceback."""
    assert "Traceback" not in err, err
    lines = [line[line.index("lmfoundry: error:"):] for line in err.splitlines() if "lmfoundry: error:" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, world, tmp_path, capsys):
    env = Env(world, tmp_path)
    with case.prepare(env):
        grown = {name: (tmp_path / name).read_bytes() for name in case.grows}
        before = snapshot(world["root"], tmp_path)
        code = main(case.argv(env))
        line = error_line(capsys.readouterr().err)
        after = snapshot(world["root"], tmp_path)
        for name, earlier in grown.items():  # a log may have gained the rows of the steps that did run
            assert (tmp_path / name).read_bytes().startswith(earlier), name
        for name in case.grows + case.updates:
            before.pop(str(tmp_path / name), None), after.pop(str(tmp_path / name), None)
        assert code == case.code, line
        for part in case.says(env):
            assert part in line, (part, line)
        changed = sorted(p for p in before.keys() & after.keys() if before[p] != after[p])
        left, removed = sorted(after.keys() - before.keys()), sorted(before.keys() - after.keys())
        assert not changed, f"earlier output changed: {changed}"
        assert not left, f"left behind: {left}"
        assert not removed, f"removed: {removed}"
        if case.then is not None:
            case.then(env)
