"""A validation split that always exists: whole documents by hash, or the tail of every document.

The single-book case is the one that used to fail (one document: all train or all val); here a real
novel from ``../shared`` gets a val tail, the tokenizer trains on exactly the train text, and the
training loop validates on the tail.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_shards import read_split, tokenize, write_jsonl
from test_tokenizer_fixtures import make_corpus
from train_helpers import train_recipe

from lmfoundry.cli import main
from lmfoundry.data.shards import read_manifest
from lmfoundry.tokenization import train_tokenizer
from lmfoundry.tokenization.holdout import ValSplit, tail_cut, val_split_for
from lmfoundry.tokenization.sources import is_validation

BOOK = "corpora/books/pride-and-prejudice.utf8-bom-crlf.txt"  # one file = one 725 kB document


def test_tail_cut_prefers_a_line_start_then_a_space():
    text = "".join(f"line {i:03d}\n" for i in range(100))  # 900 characters, 9 per line
    cut = tail_cut(text, 0.05)
    assert text[cut - 1] == "\n" and len(text) - cut >= 45 and len(text) - cut <= 45 + 22
    prose = "word " * 200
    cut = tail_cut(prose, 0.05)
    assert prose[cut] == " " and len(prose) - cut >= 50
    unbroken = "x" * 1000
    assert tail_cut(unbroken, 0.05) == 950
    assert tail_cut("ab", 0.01) == 1  # at least one character
    assert tail_cut("abc", 0.0) == 3


def test_documents_method_is_the_old_hash_rule_and_tail_keeps_all_text():
    docs = make_corpus(50, seed=3)
    by_hash = ValSplit(0.2, "documents")
    assert [by_hash.parts(d) for d in docs] == [("", d) if is_validation(d, 0.2) else (d, "") for d in docs]
    tails = ValSplit(0.2, "tail")
    for doc in docs:
        head, tail = tails.parts(doc)
        assert head + tail == doc and tail


def test_auto_takes_whole_documents_only_when_enough_exist(tmp_path):
    write_jsonl(tmp_path / "many.jsonl", [f"document {i}" for i in range(100)])
    write_jsonl(tmp_path / "few.jsonl", ["", *[f"document {i}" for i in range(99)]])  # empty ones don't count
    assert val_split_for(0.1, "auto", [tmp_path / "many.jsonl"]).method == "documents"
    few = val_split_for(0.1, "auto", [tmp_path / "few.jsonl"])
    assert few.method == "tail" and "99 documents, fewer than 100" in few.reason
    assert val_split_for(0.1, "documents", [tmp_path / "few.jsonl"]).method == "documents"
    assert val_split_for(0.0, "auto", [tmp_path / "few.jsonl"]).method == "documents"  # no val at all
    assert val_split_for(0.1, "auto").method == "documents"  # not files: as before
    with pytest.raises(ValueError, match="val_method: expected one of auto, documents, tail"):
        val_split_for(0.1, "windows")


def test_both_schedulers_cut_the_same_tails(tmp_path):
    train_tokenizer(make_corpus(), 320, tmp_path / "tok", show_progress=False)
    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "a.jsonl", make_corpus(20, seed=1))
    write_jsonl(tmp_path / "in" / "b.jsonl", make_corpus(20, seed=2))
    local = tokenize(tmp_path / "in", tmp_path / "tok", tmp_path / "local", val_fraction=0.1)
    tasks = tokenize(tmp_path / "in", tmp_path / "tok", tmp_path / "tasks", val_fraction=0.1, tasks=2)
    assert local["val_method"] == tasks["val_method"] == "tail"
    assert local["val_reason"] == tasks["val_reason"]
    for split in ("train", "val"):
        assert sorted(map(tuple, read_split(tmp_path / "local", split))) == sorted(
            map(tuple, read_split(tmp_path / "tasks", split))
        )
        assert local["splits"][split] == {**tasks["splits"][split], "shards": local["splits"][split]["shards"]}
    assert local["splits"]["val"]["documents"] == 40  # one tail per document


def test_a_single_book_gets_a_val_tail_the_tokenizer_never_trains_on(shared, tmp_path):
    book = shared / BOOK
    text = book.read_bytes().decode("utf-8")  # as read for tokenizing: BOM and CRLF kept
    tok = train_tokenizer([book], 512, tmp_path / "tok", held_out_fraction=0.02, show_progress=False)
    report = json.loads((tmp_path / "tok" / "report.json").read_text())
    manifest = tokenize(book, tmp_path / "tok", tmp_path / "shards", val_fraction=0.02)

    assert manifest["val_method"] == "tail" and "1 document," in manifest["val_reason"]
    assert report["held_out_split"]["method"] == "tail" and report["held_out"]
    assert report["training_bytes"] == manifest["splits"]["train"]["bytes"]  # the tokenizer saw train text only
    val, train_part = manifest["splits"]["val"], manifest["splits"]["train"]
    assert val["documents"] == train_part["documents"] == 1
    assert val["bytes"] + train_part["bytes"] == len(text.encode("utf-8"))
    head, tail = (tok.decode(read_split(tmp_path / "shards", s)[0][:-1].tolist()) for s in ("train", "val"))
    assert head + tail == text and head.endswith("\n")  # cut at a line start
    assert 0.02 <= len(tail) / len(text) <= 0.03  # the fraction is of characters

    out = tmp_path / "run"
    recipe = {
        "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "max_position_embeddings": 64},
        "train": {"shards": str(tmp_path / "shards"), "tokenizer": str(tmp_path / "tok"), "seq_len": 32,
                  "micro_batch_size": 2, "global_batch_size": 2, "max_steps": 2, "warmup_steps": 1,
                  "checkpoint_every": 0, "eval_every": 1, "eval_batches": 2, "report_to": "none",
                  "sample_every": 0},
    }
    summary = train_recipe(recipe, out)
    assert summary["val_loss"] is not None and np.isfinite(summary["val_bpb"])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"] == [1, 2]
    assert read_manifest(tmp_path / "shards")["val_method"] == "tail"


SMALL_RUN = ["--tokenizer.vocab_size", "384", "--model.hidden_size", "32", "--model.intermediate_size", "64",
             "--model.num_hidden_layers", "1", "--model.num_attention_heads", "2", "--model.num_key_value_heads", "1",
             "--model.max_position_embeddings", "64", "--train.seq_len", "32", "--train.micro_batch_size", "4",
             "--train.global_batch_size", "4", "--train.max_steps", "2", "--train.warmup_steps", "1",
             "--train.eval_every", "1", "--train.checkpoint_every", "0", "--train.sample_every", "0",
             "--train.report_to", "none", "--data.workers", "1", "--data.tasks", "1", "--data.progress", "false",
             "--eval.limit", "4", "--run.stages", "[curate, tokenizer, tokenize, train, eval]"]


def test_a_run_on_one_book_validates_and_evaluates(shared, tmp_path):
    """The failure this fixes: one whole-file input, no val split, no validation, eval failing the run."""
    run = tmp_path / "run"
    book = shared / "corpora/books/the-devils-dictionary.txt"
    assert main(["run", "tiny", "--output", str(run), "--data.inputs", f"[{book}]", *SMALL_RUN]) == 0
    summary = json.loads((run / "summary.json").read_text())
    manifest = read_manifest(run / "shards")
    # curation cuts the book into documents at its chapters; each gives its tail to val
    assert manifest["splits"]["train"]["documents"] == manifest["splits"]["val"]["documents"] > 1
    assert manifest["val_method"] == "tail"
    report = json.loads((run / "tokenizer" / "report.json").read_text())
    assert report["held_out_split"]["method"] == "tail"
    assert report["training_bytes"] == manifest["splits"]["train"]["bytes"]
    records = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "val" for r in records)
    assert np.isfinite(summary["stages"]["eval"]["result"]["bpb"]["bits_per_byte"])


def test_a_run_without_val_text_completes_and_says_why_bpb_is_missing(shared, tmp_path):
    run = tmp_path / "run"
    book = shared / "corpora/books/the-devils-dictionary.txt"
    assert main(["run", "tiny", "--output", str(run), "--data.inputs", f"[{book}]", *SMALL_RUN,
                 "--tokenize.val_fraction", "0"]) == 0
    result = json.loads((run / "summary.json").read_text())["stages"]["eval"]["result"]
    assert "val split is empty" in result["bpb"]["skipped"] and result["val"]["tokens"] == 0
