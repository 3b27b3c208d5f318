"""Reading every kind of source, and surviving every kind of damaged input."""

from __future__ import annotations

import gzip
import io
import json
import logging
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_curation import records_of

from lmfoundry.data.curation import CurateConfig, curate
from lmfoundry.data.curation.config import FILTER_NAMES
from lmfoundry.data.curation.sources import SourceReader, discover_inputs

NO_FILTERS = {name: False for name in FILTER_NAMES}
PROSE = (
    "The river ran quietly past the old mill, and the children of the village came down to the water "
    "every evening to watch the light fade over the hills. Their parents worked in the fields during "
    "the day and told stories by the fire at night, stories that had been handed down for generations. "
)


STORIES = [
    "The council met on Tuesday to discuss the new bridge. Engineers presented three designs, and the "
    "members asked many questions about the cost, the schedule and the effect on traffic in the town.",
    "A small bakery on the corner has won a national prize for its bread. The owner starts work at four "
    "in the morning and says that patience, good flour and a hot oven are the whole secret of her craft.",
    "Scientists studying the lake found that the water is cleaner than it was ten years ago. They credit "
    "the farmers upstream, who changed how they use fertilizer after a long campaign by local groups.",
]


def read_all(paths: list[str], **kwargs) -> tuple[list, SourceReader]:
    reader = SourceReader(
        discover_inputs(paths, kwargs.get("text_field", "text"), "train"), progress=False, **kwargs
    )
    return list(reader.run(None, 0, 1)), reader


def skipped(reader: SourceReader, reason: str) -> int:
    return int(reader.stats[f"skipped:{reason}"].total)


# ---- damaged input: counted skips with a warning naming file and line ---------------------------


def test_malformed_jsonl_lines_are_skipped_with_file_and_line(tmp_path, caplog):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b'{"text": "first good document"}\n'
        b"{not json at all\n"
        b"[1, 2, 3]\n"
        b'{"content": "no text field"}\n'
        b'{"text": "bad byte \xff here"}\n'
        b"\n"
        b'{"text": "   "}\n'
        b'{"text": "second good document", "id": "doc-2", "lang": "en"}\n'
    )
    with caplog.at_level(logging.WARNING):
        docs, reader = read_all([str(path)])
    assert [d.text for d in docs] == ["first good document", "second good document"]
    assert (
        docs[1].id == "doc-2" and docs[1].metadata["lang"] == "en" and docs[1].metadata["source"] == str(path)
    )
    assert skipped(reader, "malformed_json") == 2
    assert skipped(reader, "no_text_field") == 1
    assert skipped(reader, "invalid_utf8") == 1
    assert skipped(reader, "empty") == 1
    assert f"{path}:2: skipped (malformed_json)" in caplog.text
    assert f"{path}:5: skipped (invalid_utf8)" in caplog.text


def test_truncated_gzip_keeps_what_was_readable(tmp_path, caplog):
    path = tmp_path / "cut.jsonl.gz"
    data = gzip.compress(
        b"".join(json.dumps({"text": f"document {i} " * 20}).encode() + b"\n" for i in range(300))
    )
    path.write_bytes(data[: len(data) * 2 // 3])
    with caplog.at_level(logging.WARNING):
        docs, reader = read_all([str(path)])
    assert 0 < len(docs) < 300
    assert skipped(reader, "truncated_file") == 1
    assert str(path) in caplog.text and "truncated_file" in caplog.text


def test_text_encodings_line_ends_and_empty_files(tmp_path, caplog):
    books = tmp_path / "books"
    books.mkdir()
    (books / "good.txt").write_text(PROSE, encoding="utf-8")
    latin1 = "Le café de la gare était fermé; nous avons marché jusqu'à l'église du village.\r\n" * 3
    (books / "latin1.txt").write_bytes(latin1.encode("latin-1"))
    (books / "bom.txt").write_bytes(b"\xef\xbb\xbfWith a byte-order mark.\r\nSecond line.\r\n")
    (books / "empty.md").write_bytes(b"")
    (books / "blank.txt").write_text("\n\n   \n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        docs, reader = read_all([str(books)])
    by_path = {d.metadata["path"]: d for d in docs}
    assert sorted(by_path) == ["bom.txt", "good.txt", "latin1.txt"]
    assert by_path["good.txt"].metadata["kind"] == "book"
    assert by_path["latin1.txt"].text == latin1.replace("\r\n", "\n")  # decoded, CRLF -> LF
    assert by_path["bom.txt"].text == "With a byte-order mark.\nSecond line.\n"
    assert skipped(reader, "empty") == 2


def test_100mb_single_line_document_is_skipped_without_stopping(tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:
        f.write(b'{"text": "' + b"a" * (100 * 2**20) + b'"}\n')
        f.write(b'{"text": "a normal document after the huge one"}\n')
    docs, reader = read_all([str(path)])
    assert [d.text for d in docs] == ["a normal document after the huge one"]
    assert skipped(reader, "too_long") == 1


def test_long_text_file_is_split_at_line_ends(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("".join(f"line {i} of a long book\n" for i in range(2000)), encoding="utf-8")
    docs, _ = read_all([str(path)], max_doc_bytes=10_000)
    assert len(docs) > 4
    assert all(len(d.text.encode()) <= 10_000 for d in docs)
    assert "".join(d.text for d in docs) == path.read_text(encoding="utf-8")
    assert len({d.id for d in docs}) == len(docs)


def test_configuration_mistakes_fail_before_any_work(tmp_path):
    good = tmp_path / "a.jsonl"
    good.write_text('{"text": "x"}\n')
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="not-there"):
        curate(CurateConfig(inputs=[str(tmp_path / "not-there")]), out)
    with pytest.raises(ValueError, match=r"unknown filter.*gopher_qualty"):
        curate(CurateConfig(inputs=[str(good)], filters={"gopher_qualty": {}}), out)
    with pytest.raises(
        ValueError, match=r"filters\.gopher_quality \(kind web\): unknown parameter.*min_words"
    ):
        curate(CurateConfig(inputs=[str(good)], filters={"gopher_quality": {"min_words": 5}}), out)
    with pytest.raises(ValueError, match=r"data\.dedup: unknown setting.*buckets"):
        curate(CurateConfig(inputs=[str(good)], dedup={"buckets": 4}), out)
    with pytest.raises(ValueError, match="cannot tell its format"):
        curate(CurateConfig(inputs=[str(tmp_path / "a.jsonl"), str(_touch(tmp_path / "x.bin"))]), out)
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"body": ["hello"]}), table)
    with pytest.raises(ValueError, match=r"no column 'text'.*body"):
        curate(CurateConfig(inputs=[str(table)]), out)
    assert not out.exists()


def _touch(path: Path) -> Path:
    path.write_bytes(b"\x00\x01")
    return path


def test_damaged_inputs_in_a_full_run_are_counted_in_stats(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "good.jsonl").write_text(
        "".join(json.dumps({"text": f"Document number {i}. " + PROSE}) + "\n" for i in range(6)) + "{broken\n"
    )
    data = gzip.compress(
        b"".join(json.dumps({"text": f"gz {i} " + PROSE}).encode() + b"\n" for i in range(50))
    )
    (inputs / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    (inputs / "empty.txt").write_bytes(b"")
    stats = curate(
        CurateConfig(
            inputs=[str(inputs)],
            filters=NO_FILTERS,
            dedup={"exact": False, "minhash": False},  # the documents are near-duplicates on purpose
            workers=1,
            tasks=2,
            progress=False,
        ),
        tmp_path / "out",
    )
    assert stats["complete"]
    assert stats["read"]["skipped"] == {
        "empty": 1,
        "malformed_json": 2,  # the broken line, and the line the gzip cut in half
        "truncated_file": 1,
    }
    assert stats["by_source"][str(inputs)]["skipped"]["truncated_file"] == 1
    records = records_of(tmp_path / "out")
    assert len(records) == stats["output"]["documents"] >= 6
    assert (tmp_path / "out" / "stats.json").is_file()


# ---- code repositories ------------------------------------------------------------------------


def test_code_repository_reads_tracked_source_and_applies_code_rules(tmp_path):
    repo = tmp_path / "repo"
    (repo / "vendor").mkdir(parents=True)
    (repo / "pkg").mkdir()
    (repo / "pkg" / "main.py").write_text(
        "def add(a, b):\n    '''Add two numbers.'''\n    return a + b\n\n\nprint(add(1, 2))\n"
    )
    (repo / "pkg" / "util.rs").write_text('fn main() {\n    println!("hello");\n}\n')
    (repo / "vendor" / "lib.py").write_text("x = 1\n")
    (repo / "app.min.js").write_text("var a=1;" * 50)
    (repo / "gen.py").write_text("# Code generated by protoc. DO NOT EDIT.\nx = 1\ny = 2\n")
    (repo / "data.py").write_text("TABLE = [" + ", ".join(str(i) for i in range(2000)) + "]\n")
    (repo / "blob.py").write_bytes(b"\x00\x01\x02binary")
    (repo / "notes.bin").write_bytes(b"\x00")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    (repo / "untracked.py").write_text("print('not in git')\n")
    stats = curate(
        CurateConfig(inputs=[str(repo)], workers=1, tasks=1, progress=False, dedup={"minhash": False}),
        tmp_path / "out",
    )
    records = {r["metadata"]["path"]: r for r in records_of(tmp_path / "out")}
    assert set(records) == {"pkg/main.py", "pkg/util.rs"}
    assert records["pkg/main.py"]["metadata"]["language"] == "python"
    assert records["pkg/util.rs"]["metadata"]["language"] == "rust"
    assert records["pkg/main.py"]["source"] == str(repo)
    code = next(s for s in stats["stages"] if s["name"] == "code@code")
    assert set(code["dropped"]) == {"code:generated", "code:max_line_length"}
    assert stats["read"]["skipped"] == {"binary": 1}
    # left out by path as linguist sees it (vendor/ and *.min.js are in its vendor.yml), and counted
    assert stats["read"]["files_skipped"] == {"extension_unsupported": 1, "path_vendored": 2}
    # prose rules never judged the code
    assert all(
        s["documents_in"] == 0 for s in stats["stages"] if s["name"].startswith(("gopher", "c4", "fineweb"))
    )


# ---- web archives and the Hub -------------------------------------------------------------------


def write_warc(path: Path, pages: list[tuple[str, str]], truncate: bool = False) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    for url, html in pages:
        headers = StatusAndHeaders(
            "200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1"
        )
        record = writer.create_warc_record(
            url, "response", payload=io.BytesIO(html.encode()), http_headers=headers
        )
        writer.write_record(record)
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) * 3 // 4] if truncate else data)


def html_page(title: str, body: str) -> str:
    paragraphs = "".join(f"<p>{body}</p>" for _ in range(3))
    return (
        f"<html><head><title>{title}</title></head><body><nav><a href='/'>Home</a> | <a href='/x'>Menu</a></nav>"
        f"<article><h1>{title}</h1>{paragraphs}</article><footer>Copyright footer</footer></body></html>"
    )


def test_warc_html_is_extracted_with_urls_and_blocklist(tmp_path, caplog):
    pages = [
        (f"https://news.example.org/story-{i}", html_page(f"Story {i}", body))
        for i, body in enumerate(STORIES)
    ]
    pages.append(("https://blocked.example.com/page", html_page("Blocked", "Blocked page. " + PROSE)))
    write_warc(tmp_path / "crawl.warc.gz", pages)
    write_warc(tmp_path / "cut.warc.gz", pages * 2, truncate=True)
    config = CurateConfig(
        inputs=[str(tmp_path / "crawl.warc.gz"), str(tmp_path / "cut.warc.gz")],
        # the integrated blocklists (millions of domains) take seconds to load: test with our own
        filters={
            **NO_FILTERS,
            "url": {"extra_domains": ["blocked.example.com"], "use_integrated_lists": False},
        },
        workers=1,
        tasks=1,
        progress=False,
    )
    with caplog.at_level(logging.WARNING):
        stats = curate(config, tmp_path / "out")
    records = records_of(tmp_path / "out")
    urls = sorted(r["metadata"]["url"] for r in records)
    assert urls == [f"https://news.example.org/story-{i}" for i in range(3)]  # the cut copies are duplicates
    text = next(r["text"] for r in records if r["metadata"]["url"].endswith("story-1"))
    assert "A small bakery on the corner" in text and "<p>" not in text and "Menu" not in text
    url_stage = next(s for s in stats["stages"] if s["name"] == "url@web")
    assert set(url_stage["dropped"]) == {"url:subdomain"}
    skipped_read = stats["read"]["skipped"]
    assert skipped_read.get("warc_truncated_record", 0) + skipped_read.get("warc_truncated_tail", 0) == 1
    assert "cut.warc.gz:record" in caplog.text


def test_hub_dataset_from_local_folder_streams_across_tasks(tmp_path):
    folder = tmp_path / "my_dataset" / "data"
    folder.mkdir(parents=True)
    rows = [{"text": f"Hub row {i}. " + PROSE, "id": f"row-{i}"} for i in range(40)]
    pq.write_table(pa.Table.from_pylist(rows[:20]), folder / "train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(rows[20:]), folder / "train-00001-of-00002.parquet")
    stats = curate(
        CurateConfig(
            inputs=[f"hf:{tmp_path / 'my_dataset'}"],
            filters=NO_FILTERS,
            dedup={"exact": False, "minhash": False},  # rows are near-duplicates on purpose
            workers=1,
            tasks=2,
            progress=False,
        ),
        tmp_path / "out",
    )
    records = records_of(tmp_path / "out")
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in rows)  # each row once, none lost
    assert stats["by_source"][f"hf:{tmp_path / 'my_dataset'}"]["documents_read"] == 40
    with pytest.raises(FileNotFoundError, match="Hub dataset"):
        curate(CurateConfig(inputs=[f"hf:{tmp_path / 'nope'}"]), tmp_path / "out2")


def test_word_lists_come_from_local_copies(monkeypatch):
    import socket

    from datatrove.data import Document

    from lmfoundry.data.curation.filters import C4BadWords, UrlBlocklist

    def no_network(*args, **kwargs):
        raise AssertionError("curation tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    badwords = C4BadWords()
    # why the rule is off by default: the King James Bible trips it
    verse = Document(text="And Balaam rose up in the morning, and saddled his ass.", id="v", metadata={})
    assert badwords.filter(verse) == (False, "document_removed_with_badwords")
    assert badwords.filter(Document(text="A clean sentence about gardens.", id="c", metadata={})) is True
    url_filter = UrlBlocklist(use_integrated_lists=False, extra_domains=["example.co.uk"])
    assert (
        url_filter.tldextractor("https://a.b.example.co.uk/x").top_domain_under_public_suffix
        == "example.co.uk"
    )
    assert url_filter.filter(Document(text="x", id="u", metadata={"url": "https://www.example.co.uk/p"})) == (
        False,
        "domain",
    )


def test_sorted_line_file_answers_like_the_set_datatrove_reads(tmp_path):
    import random

    from datatrove.pipeline.filters.url_filter import parse_list

    from lmfoundry.data.curation.urls import SortedLines

    rng = random.Random(3)
    names = sorted({"".join(rng.choice("ab.-") for _ in range(rng.randint(1, 6))) for _ in range(400)})
    probes = names + ["", "zz", "a", " a", "a\n", "é", "#a"] + [n + "." for n in names[:50]]
    cases = {
        "sorted": "\n".join(names) + "\n",
        "sorted-no-final-newline": "\n".join(names),
        "unsorted": "\n".join(reversed(names)) + "\n",
        "comment-and-spaces": "# list\n" + "\n".join(f" {n}" for n in names) + "\n",
        "blank-line": "\n".join(names[:10]) + "\n\n" + "\n".join(names[10:]) + "\n",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with open(path, encoding="utf-8") as f:
            expected = parse_list(f, do_normalize=False)
        lines = SortedLines(path)
        assert all((probe in lines) == (probe in expected) for probe in probes), name
        searched = lines._map is not None
        assert searched == name.startswith("sorted"), name
        marker = list(tmp_path.glob(f"{name}.lmfoundry-sorted-*"))
        assert bool(marker) == searched, name  # the check is remembered beside the file
        assert SortedLines(path)._map is not None if searched else True


# ---- per-kind rules -----------------------------------------------------------------------------


def test_each_kind_has_its_rules_and_a_recipe_overrides_them_per_kind():
    from lmfoundry.data.curation.config import KIND_FILTER_DEFAULTS

    params = CurateConfig(inputs=["x"]).filter_params()
    assert list(params["web"]) == ["url", "language", "gopher_repetition", "gopher_quality", "c4_quality",
                                   "fineweb_quality"]  # fmt: skip
    assert list(params["book"]) == ["language", "gopher_repetition", "gopher_quality"]
    assert params["book"]["gopher_quality"]["max_doc_words"] is None  # no length cap for books
    assert params["book"]["gopher_repetition"]["dup_line_frac"] is None  # paragraph-level repetition
    assert list(params["code"]) == ["code"]
    assert set(params["docs"]) == set(KIND_FILTER_DEFAULTS["docs"])

    config = CurateConfig(
        inputs=["x"],
        filters={
            "gopher_quality": {"min_doc_words": 30},  # every kind that has the rule
            "c4_badwords": True,  # on where a kind names it (web)
            "book": {"language": False, "c4_quality": {}},  # one kind
            "web": {"url": False},
        },
    )
    params = config.filter_params()
    assert params["web"]["gopher_quality"]["min_doc_words"] == 30
    assert params["book"]["gopher_quality"] == {"max_doc_words": None, "max_non_alpha_words_ratio": 0.6,
                                                "min_doc_words": 30}  # fmt: skip
    assert "language" not in params["book"] and "c4_quality" in params["book"]
    assert "url" not in params["web"] and "c4_badwords" in params["web"]
    assert "c4_badwords" not in params["book"]
    config.validate()
    with pytest.raises(ValueError, match=r"data\.filters\.book: unknown filter\(s\) gopher"):
        CurateConfig(inputs=["x"], filters={"book": {"gopher": {}}}).filter_params()
    with pytest.raises(ValueError, match=r"unknown filter\(s\) or kind\(s\) novel"):
        CurateConfig(inputs=["x"], filters={"novel": {}}).filter_params()


def test_kind_forced_by_the_input_spec_and_by_a_record_field(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        json.dumps({"text": "a web page", "id": "w"})
        + "\n"
        + json.dumps({"text": "a book", "id": "b", "kind": "book"})
        + "\n"
    )
    docs, _ = read_all([str(path)])
    assert {d.id: d.metadata["kind"] for d in docs} == {"w": "web", "b": "book"}
    docs, _ = read_all([f"docs:{path}"])
    assert {d.metadata["kind"] for d in docs} == {"docs"}
