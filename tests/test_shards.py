"""Token shards: round trip, datatrove compatibility, manifest, atomic/resumable runs, fast-path parity."""

from __future__ import annotations

import gzip
import json
import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tokenizer_fixtures import make_corpus, make_tokenizer
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from lmfoundry.cli import main
from lmfoundry.data.shards import TokenizeConfig, read_manifest, tokenize_shards
from lmfoundry.data.shards.encoding import EncodeJob
from lmfoundry.tokenization import tokenizer_fingerprint
from lmfoundry.tokenization.fast_encoding import DocumentEncoder, choose_encoder
from lmfoundry.tokenization.sources import is_validation
from lmfoundry.tokenization.train import build_backend


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    make_tokenizer(path, vocab_size=1024)
    return path


@pytest.fixture(scope="module")
def docs():
    return make_corpus(400, seed=11)


def tokenize(inputs, tokenizer_dir, output_dir, **settings):
    """The shard stage with the settings given as keywords, one encoding process unless told."""
    config = TokenizeConfig(**{"workers": 1, **settings})
    return tokenize_shards(config, inputs, tokenizer_dir, output_dir, show_progress=False)


def write_jsonl(path, docs, field="text"):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({field: d}) + "\n" for d in docs)


def read_split(out, split):
    """Documents of a split as token arrays, cut at the .ds.index ends (EOS included)."""
    documents = []
    for shard in sorted((out / split).glob("*.ds")):
        tokens = np.fromfile(shard, dtype="<u2")
        ends = np.fromfile(f"{shard}.index", dtype="<u8").astype(np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        documents += [tokens[s:e] for s, e in zip(starts, ends)]
    return documents


def test_round_trip_every_document(tmp_path, tok_dir, docs):
    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "a.jsonl", docs[:200])
    write_jsonl(tmp_path / "in" / "b.jsonl.gz", docs[200:])
    out = tmp_path / "shards"
    manifest = tokenize(tmp_path / "in", tok_dir, out, val_fraction=0.1, shard_tokens=5000, workers=2)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    eos = tok.eos_token_id
    for split, expected in (
        ("train", [d for d in docs if not is_validation(d, 0.1)]),
        ("val", [d for d in docs if is_validation(d, 0.1)]),
    ):
        got = read_split(out, split)
        assert len(got) == len(expected) > 0
        for tokens, text in zip(got, expected):
            assert tokens[-1] == eos and eos not in tokens[:-1]  # literal "<|endoftext|>" stays text
            assert tok.decode(tokens[:-1].tolist()) == text
        joined = np.concatenate(got).tolist()
        assert tok.decode(joined) == "".join(t + "<|endoftext|>" for t in expected)
        summary = manifest["splits"][split]
        assert summary["documents"] == len(expected)
        assert summary["bytes"] == sum(len(t.encode()) for t in expected)
        assert summary["tokens"] == len(joined)
        assert manifest["bytes_per_token"][split] == pytest.approx(summary["bytes"] / summary["tokens"])
    assert manifest["splits"]["train"]["shards"] > 1  # shard_tokens respected
    assert manifest["tokenizer_fingerprint"] == tokenizer_fingerprint(tok_dir)
    assert (
        manifest["dtype"] == "uint16" and manifest["vocab_size"] == 1024 and manifest["eos_token_id"] == eos
    )
    assert manifest["tokenizer"]["encoder"] == "tiktoken"
    for record in manifest["shards"]:
        assert set(record) == {"path", "split", "tokens", "documents", "bytes", "sha256"}
        assert (out / record["path"]).stat().st_size == 2 * record["tokens"]
        assert (out / (record["path"] + ".metadata")).read_text().split("\n")[1] == str(record["tokens"])
    assert read_manifest(out) == manifest


def test_datatrove_reads_our_shards(tmp_path, tok_dir, docs):
    from datatrove.utils.dataset import DatatroveFolderDataset

    write_jsonl(tmp_path / "in.jsonl", docs)
    out = tmp_path / "shards"
    tokenize(tmp_path / "in.jsonl", tok_dir, out, val_fraction=0.0, shard_tokens=4000)
    seq_len = 31
    dataset = DatatroveFolderDataset(str(out / "train"), seq_len=seq_len, token_size=2, return_positions=True)
    shards = sorted((out / "train").glob("*.ds"))
    assert len(dataset) == sum(np.fromfile(s, dtype="<u2").size // (seq_len + 1) for s in shards)
    first = np.fromfile(shards[0], dtype="<u2")
    item = dataset[1]
    assert item["input_ids"].tolist() == first[seq_len + 1 : 2 * (seq_len + 1)].tolist()
    assert item["positions"][0] == 0  # positions come from our .ds.index document ends


def test_rerun_is_noop_refuses_other_tokenizer_and_overwrites(tmp_path, tok_dir, docs, caplog):
    write_jsonl(tmp_path / "in.jsonl", docs[:100])
    out = tmp_path / "shards"
    first = tokenize(tmp_path / "in.jsonl", tok_dir, out)
    mtime = (out / "manifest.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        assert tokenize(tmp_path / "in.jsonl", tok_dir, out) == first
    assert "nothing to do" in caplog.text
    assert (out / "manifest.json").stat().st_mtime_ns == mtime
    other = tmp_path / "other_tok"
    make_tokenizer(other, vocab_size=320)
    with pytest.raises(FileExistsError, match="different tokenizer"):
        tokenize(tmp_path / "in.jsonl", other, out)
    with pytest.raises(FileExistsError, match="different inputs"):
        tokenize(tmp_path / "in.jsonl", tok_dir, out, val_fraction=0.5)
    assert read_manifest(out) == first
    replaced = tokenize(tmp_path / "in.jsonl", other, out, overwrite=True)
    assert replaced["tokenizer_fingerprint"] == tokenizer_fingerprint(other)


def test_interrupted_run_restarts_cleanly(tmp_path, tok_dir, docs, monkeypatch):
    write_jsonl(tmp_path / "in.jsonl", docs[:100])
    out = tmp_path / "shards"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("lmfoundry.data.shards.folder.write_json_atomic", crash)  # dies before the manifest
    with pytest.raises(KeyboardInterrupt):
        tokenize(tmp_path / "in.jsonl", tok_dir, out, shard_tokens=2000)
    assert not (out / "manifest.json").exists()
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        read_manifest(out)
    (out / ".partial" / "train").mkdir(parents=True)
    (out / ".partial" / "train" / "00000.ds").write_bytes(b"\x00\x01\x02")  # leftover half-shard
    monkeypatch.undo()
    manifest = tokenize(tmp_path / "in.jsonl", tok_dir, out, shard_tokens=2000)
    assert not (out / ".partial").exists()
    assert sorted(p.name for p in (out / "train").glob("*.ds")) == [
        r["path"].split("/")[1] for r in manifest["shards"] if r["split"] == "train"
    ]


def test_interrupted_run_resumes_to_identical_shards(tmp_path, tok_dir, docs, monkeypatch, caplog):
    write_jsonl(tmp_path / "in.jsonl", [*docs[:150], "", "", *docs[150:]])  # empty documents count too
    options = {"val_fraction": 0.1, "shard_tokens": 3000, "checkpoint_bytes": 30_000, "workers": 1}
    reference = tokenize(tmp_path / "in.jsonl", tok_dir, tmp_path / "ref", **options)
    assert len({r["path"].split("/")[1].split("_")[0] for r in reference["shards"]}) > 3  # several parts

    encode = EncodeJob.__call__
    encoded = []

    def interrupted(job, item):
        if len(encoded) == 12:
            raise KeyboardInterrupt
        encoded.append(len(item[0]))
        return encode(job, item)

    out = tmp_path / "out"
    monkeypatch.setattr(EncodeJob, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tokenize(tmp_path / "in.jsonl", tok_dir, out, **options)
    assert not (out / "manifest.json").exists()
    finished = json.loads((out / ".partial" / "progress.json").read_text())["parts"]
    assert finished

    def counted(job, item):
        encoded.append(len(item[0]))
        return encode(job, item)

    encoded.clear()
    monkeypatch.setattr(EncodeJob, "__call__", counted)
    with caplog.at_level(logging.INFO):
        resumed = tokenize(tmp_path / "in.jsonl", tok_dir, out, **options)
    assert f"resuming: {len(finished)} finished part(s)" in caplog.text
    assert sum(encoded) < len(docs)  # the finished parts were not encoded again
    assert resumed["shards"] == reference["shards"]  # same names, counts and sha256
    assert resumed["splits"] == reference["splits"]
    assert not (out / ".partial").exists()


def test_inputs_txt_md_parquet_and_bad_records(tmp_path, tok_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("first document\r\nwith CRLF\n", encoding="utf-8")
    (tmp_path / "in" / "b.md").write_text("# Title\n\nbody", encoding="utf-8")
    pq.write_table(pa.table({"body": ["row one", "", "row three"]}), tmp_path / "in" / "c.parquet")
    (tmp_path / "in" / "stats.json").write_text("{}")
    manifest = tokenize(tmp_path / "in", tok_dir, tmp_path / "s1", text_field="body", val_fraction=0.0)
    assert manifest["splits"]["train"]["documents"] == 4  # a txt, an md, two rows (the empty one skipped)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    assert (
        tok.decode(read_split(tmp_path / "s1", "train")[0][:-1].tolist()) == "first document\r\nwith CRLF\n"
    )
    with pytest.raises(ValueError, match=r"c\.parquet: no column 'text'"):
        tokenize(tmp_path / "in", tok_dir, tmp_path / "s0")
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, ["fine " * 200] * 300)  # past the parity sample: the error comes mid-run
    with open(bad, "a") as f:
        f.write("[1, 2]\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:301: expected a JSON object"):
        tokenize(bad, tok_dir, tmp_path / "s2", shard_tokens=1000, val_method="documents")  # no counting pass
    assert not (tmp_path / "s2").exists()  # no manifest, no partial shards, not even the folder left behind


@pytest.fixture(scope="module")
def parity_tok_dir(tmp_path_factory):
    """A larger vocabulary trained on code and many scripts, so that long merges are exercised."""
    path = tmp_path_factory.mktemp("parity")
    make_tokenizer(path, vocab_size=2048, min_frequency=1)
    return path


@pytest.fixture(scope="module")
def encoders(parity_tok_dir):
    return DocumentEncoder(parity_tok_dir, "tiktoken"), DocumentEncoder(parity_tok_dir, "tokenizers")


def test_tiktoken_equals_tokenizers_on_corpus(parity_tok_dir, encoders, docs):
    fast, reference = encoders
    for a, b in zip(fast.encode(docs), reference.encode(docs)):
        np.testing.assert_array_equal(a, b)
    assert choose_encoder(parity_tok_dir, docs[:20]).backend == "tiktoken"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_tiktoken_equals_tokenizers_on_arbitrary_text(encoders, text):
    fast, reference = encoders
    np.testing.assert_array_equal(fast.encode([text])[0], reference.encode([text])[0])


def _save_fast(backend: Tokenizer, path):
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>").save_pretrained(path)


def test_fallback_when_tiktoken_cannot_express_the_tokenizer(tmp_path, caplog):
    make_tokenizer(tmp_path / "base", vocab_size=320)
    backend = Tokenizer.from_file(str(tmp_path / "base" / "tokenizer.json"))
    backend.normalizer = normalizers.Lowercase()
    _save_fast(backend, tmp_path / "lower")
    write_jsonl(tmp_path / "in.jsonl", ["Hello World", "UPPER case"])
    with caplog.at_level(logging.WARNING):
        manifest = tokenize(
            tmp_path / "in.jsonl", tmp_path / "lower", tmp_path / "s", val_fraction=0.0
        )
    assert "tiktoken fast path unavailable" in caplog.text and "normalizer" in caplog.text
    assert manifest["tokenizer"]["encoder"] == "tokenizers"
    tok = AutoTokenizer.from_pretrained(tmp_path / "lower")
    expected = tok("Hello World", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert read_split(tmp_path / "s", "train")[0].tolist() == expected


def test_fallback_when_parity_fails(tmp_path, caplog):
    # Ids out of merge order: tokenizers merges (a, b) first, tiktoken merges by rank and picks "bc".
    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<|endoftext|>": 0, **{ch: i + 1 for i, ch in enumerate(sorted(byte_chars))}}
    vocab.update({"bc": len(vocab), "ab": len(vocab) + 1})
    backend = build_backend()  # our pipeline, with a hand-made model
    backend.model = models.BPE(vocab=vocab, merges=[("a", "b"), ("b", "c")], ignore_merges=True)
    backend.add_special_tokens(["<|endoftext|>"])
    _save_fast(backend, tmp_path / "odd")
    write_jsonl(tmp_path / "in.jsonl", ["abc abc", "xyz"])
    with caplog.at_level(logging.WARNING):
        manifest = tokenize(tmp_path / "in.jsonl", tmp_path / "odd", tmp_path / "s", val_fraction=0.0)
    assert "does not reproduce" in caplog.text
    assert manifest["tokenizer"]["encoder"] == "tokenizers"
    assert read_split(tmp_path / "s", "train")[0].tolist()[:2] == [vocab["ab"], vocab["c"]]


def test_cli_tokenize(tmp_path, tok_dir, docs, capsys):
    write_jsonl(tmp_path / "in.jsonl", docs[:50], field="content")
    args = ["data", "tokenize", "--input", str(tmp_path / "in.jsonl"), "--tokenizer", str(tok_dir)]
    args += [
        "--output",
        str(tmp_path / "s"),
        "--text-field",
        "content",
        "--workers",
        "1",
        "--val-fraction",
        "0.2",
    ]
    assert main(args) == 0
    assert "train:" in capsys.readouterr().out
    assert read_manifest(tmp_path / "s")["val_fraction"] == 0.2
    assert main([*args[:-2], "--val-fraction", "1.5"]) == 2
    assert "val_fraction" in capsys.readouterr().err


def shard_digest(out) -> str:
    """One sha256 over every shard's name, tokens and document index."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(out.glob("*/*")):
        if path.name.endswith((".ds", ".ds.index")):
            digest.update(f"{path.parent.name}/{path.name}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


# Computed with the code from before tokenization moved into lmfoundry/data/shards (commit 2bc0aee), for
# the tokenizer this fingerprint names (tokenizers trains the same merges from the same corpus).
BEFORE_THE_MOVE = {
    "tokenizer": "727755d85980abceea1f9a3f29f777b24bf833f06b23101049dc789283dd4765",
    "local": "7393f2fbc36e591e705e046032438caec00f5dc016d14550979155f1413cb7f1",
    "tasks": "cdd5209e2dc07ea4615f15e63f6efce00ab873418286c9c1ee3c1a5fcdb25dbc",
}


def test_shards_are_bitwise_those_of_the_code_before_the_move(tmp_path, tok_dir, docs):
    if tokenizer_fingerprint(tok_dir) != BEFORE_THE_MOVE["tokenizer"]:
        pytest.skip("this tokenizers release trains another tokenizer from the fixture corpus")
    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "a.jsonl", docs[:150])
    write_jsonl(tmp_path / "in" / "b.jsonl.gz", ["", *docs[150:300]])
    write_jsonl(tmp_path / "in" / "c.jsonl", docs[300:])
    options = {"val_fraction": 0.1, "shard_tokens": 5000}
    manifest = tokenize(tmp_path / "in", tok_dir, tmp_path / "local", workers=2, checkpoint_bytes=20_000, **options)
    assert manifest["val_method"] == "documents"  # 400 documents: auto keeps the whole-document rule
    assert shard_digest(tmp_path / "local") == BEFORE_THE_MOVE["local"]
    tokenize(tmp_path / "in", tok_dir, tmp_path / "tasks", tasks=2, **options)
    assert shard_digest(tmp_path / "tasks") == BEFORE_THE_MOVE["tasks"]


def test_a_folder_from_before_val_method_counts_as_whole_documents(tmp_path, tok_dir, docs):
    write_jsonl(tmp_path / "in.jsonl", docs[:100])
    out = tmp_path / "shards"
    tokenize(tmp_path / "in.jsonl", tok_dir, out, val_fraction=0.1)  # 100 documents: auto -> documents
    manifest = read_manifest(out)
    assert (manifest["val_method"], manifest["val_reason"]) == ("documents", "auto: at least 100 documents")
    del manifest["val_method"], manifest["val_reason"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert tokenize(tmp_path / "in.jsonl", tok_dir, out, val_fraction=0.1) == manifest  # complete: kept
    with pytest.raises(FileExistsError, match="different inputs or settings"):
        tokenize(tmp_path / "in.jsonl", tok_dir, out, val_fraction=0.1, val_method="tail")
