"""Tokenizer training: formats, special tokens, exact round trips, fingerprint, report, CLI."""

from __future__ import annotations

import gzip
import itertools
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tokenizer_fixtures import make_corpus, make_tokenizer
from transformers import AutoTokenizer

from lmfoundry.cli import main
from lmfoundry.tokenization import (
    EOS_TOKEN,
    PAD_TOKEN,
    special_token_ids,
    tokenizer_fingerprint,
    train_tokenizer,
)
from lmfoundry.tokenization.sources import iter_documents


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    make_tokenizer(path, vocab_size=500, held_out_fraction=0.05)
    return path


@pytest.fixture(scope="module")
def tok(tok_dir):
    return AutoTokenizer.from_pretrained(tok_dir)


def test_autotokenizer_loads_with_special_tokens(tok_dir, tok):
    assert (tok_dir / "tokenizer.json").is_file() and (tok_dir / "tokenizer_config.json").is_file()
    assert len(tok) == 512  # 500 rounded up to a multiple of 64
    assert tok.eos_token == EOS_TOKEN and tok.bos_token == EOS_TOKEN and tok.pad_token == PAD_TOKEN
    assert tok.padding_side == "right"
    ids = special_token_ids(tok)
    assert ids == {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 1, "vocab_size": 512}
    # nothing is added implicitly: documents are separated by the data stage, not the tokenizer
    assert tok("hello world")["input_ids"] == tok("hello world", add_special_tokens=False)["input_ids"]
    batch = tok(["a", "a longer text"], padding=True)
    assert batch["input_ids"][0][-1] == tok.pad_token_id


def test_report_written_on_held_out_documents(tok_dir):
    report = json.loads((tok_dir / "report.json").read_text())
    assert report["held_out"] is True
    assert report["documents"] >= 1 and report["training_documents"] + report["documents"] == 200
    assert 1.0 < report["bytes_per_token"] < 20.0
    assert report["vocab_size"] == 512


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_round_trip_arbitrary_unicode(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["<|endoftext|>", "<|pad|>", " ", "\n", "x", "數", "🙂", "\t\t"]), max_size=40)
)
def test_round_trip_with_literal_special_text(tok, pieces):
    text = "".join(pieces)
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_literal_special_text_is_the_special_token(tok):
    ids = tok.encode("a<|endoftext|>b", add_special_tokens=False)
    assert tok.eos_token_id in ids
    ordinary = tok.backend_tokenizer.encode_batch(["a<|endoftext|>b"], add_special_tokens=False)
    assert ordinary[0].ids == ids  # the backend also matches it ...
    assert (
        tok.eos_token_id not in tok("a<|endoftext|>b", split_special_tokens=True)["input_ids"]
    )  # ... unless split


def test_fingerprint_stable_across_resave_and_distinct(tmp_path, tok_dir, tok):
    fp = tokenizer_fingerprint(tok_dir)
    assert len(fp) == 64
    assert tokenizer_fingerprint(tok) == fp
    tok.save_pretrained(tmp_path / "resaved")
    assert tokenizer_fingerprint(tmp_path / "resaved") == fp
    tok.backend_tokenizer.enable_padding(pad_id=1, pad_token=PAD_TOKEN)  # runtime setting, not identity
    assert tokenizer_fingerprint(tok) == fp
    tok.backend_tokenizer.no_padding()
    other = train_tokenizer(make_corpus(seed=1), 512, tmp_path / "other", show_progress=False)
    assert tokenizer_fingerprint(other) != fp
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        tokenizer_fingerprint(tmp_path / "missing")


def test_presets_and_chat_template(tmp_path):
    tok = make_tokenizer(tmp_path / "t", vocab_size=320, extra_special_tokens=["chat", "fim", "<|tool|>"])
    loaded = AutoTokenizer.from_pretrained(tmp_path / "t")
    for token in [
        "<|im_start|>",
        "<|im_end|>",
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|tool|>",
    ]:
        assert len(loaded.encode(token, add_special_tokens=False)) == 1
        assert token in loaded.all_special_tokens
    assert len(tok) % 64 == 0 and len(loaded) == len(tok)
    text = loaded.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ValueError, match="preset"):
        train_tokenizer(make_corpus(), 320, tmp_path / "bad", extra_special_tokens=["chatml"])


def _write_inputs(root):
    docs = make_corpus(60, seed=3)
    root.mkdir()
    (root / "a.txt").write_text(docs[0], encoding="utf-8")
    (root / "b.md").write_text(docs[1], encoding="utf-8")
    with open(root / "c.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"content": d}) + "\n" for d in docs[2:20])
    with gzip.open(root / "d.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"content": d}) + "\n" for d in docs[20:40])
    pq.write_table(pa.table({"content": docs[40:]}), root / "e.parquet")
    (root / "stats.json").write_text("{}")  # curation's stats file: not a document file, skipped
    return docs


def test_train_from_files_folder_and_dataset(tmp_path):
    docs = _write_inputs(tmp_path / "in")
    from_files = train_tokenizer(
        tmp_path / "in",
        320,
        tmp_path / "t1",
        text_field="content",
        held_out_fraction=0.0,
        show_progress=False,
    )
    report = json.loads((tmp_path / "t1" / "report.json").read_text())
    assert report["training_documents"] == len(docs) and report["held_out"] is False
    from_strings = train_tokenizer(docs, 320, tmp_path / "t2", held_out_fraction=0.0, show_progress=False)
    dataset = datasets.Dataset.from_dict({"content": docs})
    from_dataset = train_tokenizer(
        dataset, 320, tmp_path / "t3", text_field="content", held_out_fraction=0.0, show_progress=False
    )
    streaming = train_tokenizer(
        dataset.to_iterable_dataset(),
        320,
        tmp_path / "t4",
        text_field="content",
        held_out_fraction=0.0,
        show_progress=False,
    )
    records = train_tokenizer(
        ({"content": d} for d in docs),
        320,
        tmp_path / "t5",
        text_field="content",
        held_out_fraction=0.0,
        show_progress=False,
    )
    fps = {tokenizer_fingerprint(t) for t in (from_files, from_strings, from_dataset, streaming, records)}
    assert len(fps) == 1  # same documents, same order -> the same tokenizer


def test_max_bytes_caps_training_text_and_input_is_streamed(tmp_path):
    pulled = 0

    def endless():  # a source that can only be consumed lazily
        nonlocal pulled
        for text in itertools.cycle(make_corpus(50)):
            pulled += 1
            yield text

    train_tokenizer(endless(), 320, tmp_path / "t", max_bytes=20_000, show_progress=False)
    report = json.loads((tmp_path / "t" / "report.json").read_text())
    assert 0 < report["training_bytes"] <= 20_000
    assert pulled < 200


def test_bad_inputs_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        train_tokenizer(bad, 320, tmp_path / "t", show_progress=False)
    bad.write_text('{"body": "no text field"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: no field 'text'"):
        train_tokenizer(bad, 320, tmp_path / "t", show_progress=False)
    bad.write_bytes(b'{"text": "caf\xe9"}\n')  # Latin-1, not UTF-8
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not valid UTF-8"):
        train_tokenizer(bad, 320, tmp_path / "t", show_progress=False)
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match=r"bad.txt: not valid UTF-8"):
        train_tokenizer(tmp_path / "bad.txt", 320, tmp_path / "t", show_progress=False)
    with pytest.raises(FileNotFoundError, match="nope"):
        train_tokenizer(tmp_path / "nope", 320, tmp_path / "t", show_progress=False)
    with pytest.raises(ValueError, match="source item 2 is a int"):
        train_tokenizer(["text", 3], 320, tmp_path / "t", show_progress=False)
    with pytest.raises(ValueError, match="source item 1: no field 'text'"):
        train_tokenizer([{"body": "x"}], 320, tmp_path / "t", show_progress=False)
    with pytest.raises(ValueError, match="at least 257"):
        train_tokenizer(["x"], 100, tmp_path / "t", show_progress=False)


def test_cli_train_and_refuse_overwrite(tmp_path, capsys):
    _write_inputs(tmp_path / "in")
    args = ["tokenizer", "train", "--input", str(tmp_path / "in"), "--text-field", "content"]
    args += ["--vocab-size", "300", "--output", str(tmp_path / "tok")]
    assert main(args) == 0
    assert "bytes_per_token" in capsys.readouterr().out
    assert len(AutoTokenizer.from_pretrained(tmp_path / "tok")) == 320
    fp = tokenizer_fingerprint(tmp_path / "tok")
    assert main(args) == 2
    assert "already holds a tokenizer" in capsys.readouterr().err
    assert tokenizer_fingerprint(tmp_path / "tok") == fp
    assert main([*args, "--overwrite"]) == 0
    assert not [p for p in (tmp_path / "tok").iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no staging


def test_lone_surrogate_escapes_are_replaced(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "lone \\ud800 pair \\ud83d\\ude00"}\n', encoding="utf-8")
    assert list(iter_documents([path])) == ["lone ? pair \U0001f600"]
