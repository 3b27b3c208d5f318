"""The built-in corpus: real KJV chapters and stdlib modules, written atomically, idempotent."""

from __future__ import annotations

import ast

from lmfoundry.data.default_corpus import COMPLETE_MARKER, write_default_corpus


def test_default_corpus_holds_the_whole_bible_and_stdlib_code(tmp_path):
    folders = write_default_corpus(tmp_path / "corpus")
    chapters = sorted(folders["books"].glob("*.txt"))
    assert len(chapters) == 1189  # every chapter of the KJV
    genesis = (folders["books"] / "01-genesis-001.txt").read_text(encoding="utf-8")
    assert genesis.startswith("Genesis, chapter 1\n\nIn the beginning God created the heaven and the earth.\n")
    assert (folders["books"] / "66-revelation-022.txt").exists()
    modules = sorted(folders["code"].glob("*.py"))
    assert len(modules) > 100
    ast.parse((folders["code"] / "os.py").read_text(encoding="utf-8"))  # real, parseable Python
    assert (tmp_path / "corpus" / COMPLETE_MARKER).exists()
    assert not (tmp_path / "corpus.tmp").exists()


def test_default_corpus_is_idempotent_and_replaces_an_interrupted_write(tmp_path):
    root = tmp_path / "corpus"
    (tmp_path / "corpus.tmp" / "books").mkdir(parents=True)  # leftovers of an interrupted call
    root.mkdir()
    (root / "stray.txt").write_text("half-written")  # no completion marker: not trusted
    write_default_corpus(root)
    assert not (root / "stray.txt").exists()
    marker_time = (root / COMPLETE_MARKER).stat().st_mtime_ns
    write_default_corpus(root)
    assert (root / COMPLETE_MARKER).stat().st_mtime_ns == marker_time
