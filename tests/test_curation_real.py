"""Curation on real files nobody here wrote: Gutenberg books, real WARC crawls, damaged files, pip's source.

The inputs are read from ``../shared/corpora`` (the ``shared`` fixture; its README lists them) and
from the pip installed beside the tests; nothing is copied into the repository.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import logging
import sysconfig
from pathlib import Path

import pytest
from test_curation import records_of

from lmfoundry.data.curation import CurateConfig, curate
from lmfoundry.data.curation.filters import HtmlExtractor
from lmfoundry.data.curation.sources import SourceReader, discover_inputs

BOOKS = {
    "english": [
        "pride-and-prejudice.utf8-bom-crlf.txt",
        "the-complete-angler.latin1.txt",
        "the-devils-dictionary.txt",
        "infantry-drill-regulations.txt",
        "the-liberty-minstrel.verse.txt",
    ],
    "french": ["entre-nous.french.txt"],
}
NO_DEDUP = {"exact": False, "minhash": False}


def read_all(inputs: list[str]) -> tuple[list, SourceReader]:
    reader = SourceReader(discover_inputs(inputs, "text", "train"), progress=False)
    return list(reader.run()), reader


def counters(reader: SourceReader, prefix: str) -> dict[str, int]:
    return {
        k[len(prefix) :]: int(v.total)
        for k, v in reader.stats.stats.items()
        if k.startswith(prefix) and "|" not in k and "@" not in k
    }


# ---- books ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def books_run(shared, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("books") / "out"
    inputs = [str(shared / "corpora" / "books" / name) for name in BOOKS["english"] + BOOKS["french"]]
    return out, curate(CurateConfig(inputs=inputs, workers=1, tasks=2, progress=False), out)


def test_english_books_keep_their_text_and_french_is_dropped_by_language(books_run, shared):
    _, stats = books_run
    for name in BOOKS["english"]:
        entry = stats["by_source"][str(shared / "corpora" / "books" / name)]
        assert entry["documents_read"] > 3, name  # a book is split into parts, never dropped for length
        assert entry["bytes_out"] >= 0.95 * entry["bytes_read"], (name, entry)
    french = stats["by_source"][str(shared / "corpora" / "books" / BOOKS["french"][0])]
    assert french["documents_out"] == 0 and set(french["dropped"]) == {"language:not_en"}
    assert stats["read"]["skipped"] == {}  # the Latin-1 book decodes, the BOM and CRLF book reads
    assert set(stats["read"]["by_kind"]) == {"book"}
    # web-page rules never judged a book
    web_steps = [s for s in stats["stages"] if s["name"].endswith("@web")]
    assert web_steps and all(s["documents_in"] == 0 for s in web_steps)


def test_book_text_is_decoded_normalised_and_stripped_of_gutenberg_boilerplate(books_run, shared):
    out, _ = books_run
    records = records_of(out)
    angler = [r for r in records if r["metadata"]["path"] == "the-complete-angler.latin1.txt"]
    assert angler and all(r["metadata"]["encoding"] not in ("utf_8", None) for r in angler)
    raw = (shared / "corpora" / "books" / "the-complete-angler.latin1.txt").read_bytes()
    assert raw.count("£".encode("latin-1")) == sum(r["text"].count("£") for r in angler) == 7
    pride = [r for r in records if r["metadata"]["path"].startswith("pride-and-prejudice")]
    assert all("\r" not in r["text"] and "\ufeff" not in r["text"] for r in pride)
    first = next(r for r in pride if "#" not in r["id"])
    assert "PRIDE AND PREJUDICE" in first["text"] and "START OF" not in first["text"]
    text = " ".join(" ".join(r["text"] for r in records).split())
    for boilerplate in ("*** START OF", "END OF THE PROJECT GUTENBERG", "END OF THIS PROJECT GUTENBERG",
                        "End of Project Gutenberg", "This eBook is for the use of anyone anywhere",
                        "Section 1. General Terms of Use"):  # fmt: skip
        assert boilerplate.lower() not in text.lower(), boilerplate
    assert "It is a truth universally acknowledged" in text
    # parts break at chapter headings: most Pride and Prejudice parts start with one
    starts = sum(r["text"].lstrip().startswith("Chapter") for r in pride)
    assert starts >= len(pride) * 3 // 4


def test_a_single_book_gives_many_documents_and_nothing_kept_is_an_error(shared, tmp_path):
    pride = shared / "corpora" / "books" / "pride-and-prejudice.utf8-bom-crlf.txt"
    stats = curate(CurateConfig(inputs=[str(pride)], workers=1, tasks=1, progress=False), tmp_path / "one")
    assert stats["output"]["documents"] >= 20  # enough for a validation split
    french = shared / "corpora" / "books" / "entre-nous.french.txt"
    config = CurateConfig(inputs=[str(french)], workers=1, tasks=1, progress=False, dedup=NO_DEDUP)
    with pytest.raises(ValueError, match=r"kept 0 of \d+ documents: language:not_en \d+"):
        curate(config, tmp_path / "none")
    assert not (tmp_path / "none" / "stats.json").exists()  # the folder does not look complete


# ---- web pages: extraction quality on trafilatura's evaluation set -------------------------------


@pytest.fixture(scope="module")
def eval_pages(shared) -> dict[str, str]:
    """The main text of trafilatura's evaluation pages, by URL, as our extraction step gives it."""
    warc = shared / "corpora" / "web" / "trafilatura-eval-pages.warc.gz"
    reader = SourceReader(discover_inputs([str(warc)], "text", "train"), progress=False)
    return {doc.metadata["url"]: doc.text for doc in HtmlExtractor(timeout=600).run(reader.run())}


def test_extraction_keeps_main_text_and_drops_boilerplate(shared, eval_pages):
    warc = shared / "corpora" / "web" / "trafilatura-eval-pages.warc.gz"
    truth = json.loads(warc.with_name("trafilatura-eval-pages.truth.json").read_text(encoding="utf-8"))
    texts = eval_pages
    kept = total_with = dropped = total_without = 0
    for url, page in truth.items():
        text = texts.get(url.strip().replace(" ", "%20"), "")  # warcio escapes spaces in URLs
        kept += sum(snippet in text for snippet in page["with"])
        total_with += len(page["with"])
        dropped += sum(snippet not in text for snippet in page["without"])
        total_without += len(page["without"])
    assert len(texts) >= 190
    assert kept / total_with >= 0.90, kept / total_with
    assert dropped / total_without >= 0.90, dropped / total_without


# ---- every record and file accounted for ----------------------------------------------------------


def _warcio_records(path: Path) -> int:
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        return sum(1 for _ in ArchiveIterator(f, arc2warc=True))


# skips that are not a record warcio yields: damage between or after records
_NOT_RECORDS = ("warc_truncated_tail", "warc_damaged_data")


@pytest.mark.parametrize(
    "name",
    [
        "web/pywb-iana.warc.gz",
        "web/ukwa-IAH-urls-wget.warc.gz",
        "bad/iana-cut-last-record.warc.gz",
        "bad/iana-cut-mid-html-record.warc.gz",
        "bad/ukwa-IAH-blackbook-truncated.warc.gz",
        "bad/ukwa-blackbook.arc.gz",
        "bad/warcio-example-trunc.warc",
    ],
)
def test_every_warc_record_is_a_document_or_a_counted_skip(shared, name, caplog):
    path = shared / "corpora" / name
    with caplog.at_level(logging.WARNING):
        docs, reader = read_all([str(path)])
    records = counters(reader, "warc_records:")
    skips = counters(reader, "skipped:")
    assert sum(records.values()) == _warcio_records(path)
    assert len(docs) + sum(v for k, v in skips.items() if k not in _NOT_RECORDS) == sum(records.values())
    assert sum(counters(reader, "warc_content_types:").values()) == records.get("response", 0) + records.get(
        "conversion", 0
    )
    if name.startswith("bad/iana-cut"):  # the cut is counted, not silent
        assert skips.get("warc_truncated_record", 0) + skips.get("warc_truncated_tail", 0) == 1
    if "pywb-iana" in name:  # redirects are not documents
        assert skips["http_status_302"] >= 1
        assert not any("302 Found" in d.text for d in docs)
        assert records == {"warcinfo": 1, "response": 48, "request": 171, "revisit": 123}


def test_reading_resumes_after_a_cut_warc_record(shared, tmp_path):
    cut = (shared / "corpora" / "bad" / "iana-cut-mid-html-record.warc.gz").read_bytes()
    after = shared / "corpora" / "web" / "ukwa-IAH-urls-wget.warc.gz"
    joined = tmp_path / "joined.warc.gz"
    joined.write_bytes(cut + after.read_bytes())
    docs, reader = read_all([str(joined)])
    expected = _warcio_records(shared / "corpora" / "bad" / "iana-cut-mid-html-record.warc.gz")
    assert sum(counters(reader, "warc_records:").values()) >= expected - 1 + _warcio_records(after)
    assert (
        any("wget" in (d.metadata.get("url") or "") or "webarchive" in d.id for d in docs) or len(docs) >= 16
    )


def test_records_after_a_corrupt_gzip_member_are_recovered(shared):
    path = shared / "corpora" / "bad" / "docs-corrupt-member5.jsonl.gz"
    docs, reader = read_all([str(path)])
    skips = counters(reader, "skipped:")
    assert skips["corrupt_gzip_member"] == 1
    # 10 members of 40 records; the 9 intact ones, 5 of them after the corrupt one, are all read
    ids = [d.id for d in docs]
    assert len(set(ids)) >= 9 * 40
    assert {d.metadata["kind"] for d in docs} == {"web"}


def test_wet_files_are_read_by_name(tmp_path):
    from warcio.warcwriter import WARCWriter

    path = tmp_path / "crawl.warc.wet.gz"
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        record = writer.create_warc_record(
            "https://example.org/a",
            "conversion",
            payload=io.BytesIO(b"Plain text of a page, as Common Crawl's WET files hold it."),
            warc_content_type="text/plain",
        )
        writer.write_record(record)
    docs, reader = read_all([str(path)])
    assert [d.metadata["url"] for d in docs] == ["https://example.org/a"]
    assert counters(reader, "warc_records:") == {"conversion": 1}


def test_a_page_declared_utf8_but_written_in_latin1_decodes():
    from lmfoundry.data.curation.sources import decode_payload

    page = (
        "<html><head><title>Menu</title></head><body><p>Our café serves crème brûlée for £4 and a naïve "
        "little rosé. The chef, who trained in Paris, makes everything fresh each morning, and the façade "
        "was restored last year.</p></body></html>"
    )
    assert decode_payload(page.encode("latin-1"), "utf-8") == page
    assert decode_payload(page.encode("utf-8"), None) == page


# ---- code the way linguist sees it: pip's own source, with its _vendor ----------------------------


def test_pip_source_vendored_files_are_left_out_and_counted_with_its_license():
    pip_dir = Path(sysconfig.get_paths()["purelib"]) / "pip"
    docs, reader = read_all([f"code:{pip_dir}"])
    all_files = [p for p in pip_dir.rglob("*") if p.is_file()]
    files_read = int(reader.stats["input_files"].total)
    left_out = counters(reader, "files_skipped:")
    assert files_read + sum(left_out.values()) == len(all_files)  # every file accounted for
    vendored = [p for p in all_files if "_vendor" in p.relative_to(pip_dir).parts]
    assert left_out["path_vendored"] >= len(vendored) > 100
    assert not any("_vendor/" in d.metadata["path"] for d in docs)
    assert {d.metadata["license"] for d in docs} == {"MIT"}
    assert {d.metadata["kind"] for d in docs} <= {"code", "docs"}
    assert any(d.metadata["path"] == "_internal/cli/main.py" for d in docs)


# ---- URL blocklist: the 4.5-million-domain list searched in place ------------------------------------


def test_url_blocklist_decides_like_datatrove_without_loading_the_domain_list(shared):
    from datatrove.data import Document
    from warcio.archiveiterator import ArchiveIterator

    from lmfoundry.data.curation.filters import StockUrlBlocklist, UrlBlocklist

    urls = []
    for path in sorted((shared / "corpora" / "web").glob("*.warc.gz")):
        with open(path, "rb") as f:
            urls += [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(f)]
    urls = sorted({u for u in urls if u and u.startswith("http")})
    ours, stock = UrlBlocklist(), StockUrlBlocklist()
    ours.download_data()
    stock.download_data()  # datatrove's: the whole list in a set
    with open(ours._domains_path, encoding="utf-8") as f:
        listed = [line.strip() for line in itertools.islice(f, 0, None, 15_000)]
    for domain in listed:  # listed domains, their subdomains, and near misses around them
        urls += [f"https://{domain}/page", f"http://www.{domain}/", f"https://{domain}x/", f"https://{domain[1:]}/"]
    decide = lambda f, u: f.filter(Document(text="x", id=u, metadata={"url": u}))  # noqa: E731
    decisions = [(decide(ours, u), decide(stock, u)) for u in urls]
    assert len(urls) > 1500 and all(a == b for a, b in decisions)
    reasons = {a[1] for a, _ in decisions if a is not True}
    assert {"domain", "subdomain"} <= reasons and sum(a is True for a, _ in decisions) > 500
    assert ours._domain_list._map is not None and ours._domain_list._set is None  # never read into memory


# ---- deterministic output -------------------------------------------------------------------------


def test_runs_idle_and_under_full_cpu_load_give_byte_identical_output(shared, tmp_path):
    """Extraction has a per-page limit far above any real page, so a saturated machine changes nothing."""
    import os
    import subprocess
    import sys

    inputs = [
        str(shared / "corpora" / "web" / "ukwa-IAH-urls-wget.warc.gz"),
        str(shared / "corpora" / "web" / "ukwa-wikipedia-post-blackout.warc.gz"),
        str(shared / "corpora" / "books" / "the-devils-dictionary.txt"),
    ]

    def run(name: str) -> tuple[dict, dict]:
        config = CurateConfig(
            inputs=inputs,
            workers=1,
            tasks=2,
            progress=False,
            filters={"url": {"use_integrated_lists": False}},
        )
        stats = curate(config, tmp_path / name)
        files = {p.name: gzip.decompress(p.read_bytes()) for p in sorted((tmp_path / name).glob("*.jsonl.gz"))}
        extract = next(s for s in stats["stages"] if s["name"] == "extract")
        assert extract["documents_in"] > 0 and "extract:timeout" not in extract["dropped"], extract
        return files, {k: v for k, v in stats.items() if k not in ("created", "elapsed_s")}

    idle = run("idle")
    # one busy loop per core for the whole second run, ended by their own ids
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)
    ]
    try:
        loaded = run("loaded")
        assert all(process.poll() is None for process in busy)  # the load lasted the whole run
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert idle[0] and idle == loaded


# ---- word splitting: spaCy's words, exactly ---------------------------------------------------------


def test_cached_spacy_words_equal_datatrove_spacy_on_real_books_and_pages(shared, eval_pages):
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    from lmfoundry.data.curation.words import CachedSpacyTokenizer

    books, _ = read_all([str(shared / "corpora" / "books")])
    texts = [d.text for d in books] + sorted(eval_pages.values())
    stock, ours = load_word_tokenizer("en"), CachedSpacyTokenizer()
    assert len(texts) > 250
    assert all(stock.word_tokenize(t) == ours.word_tokenize(t) for t in texts)
    tricky = (
        "Mr. Darcy’s aunt, Mrs. Jenkinson, lives on St. James’s St. — don’t she? It’s 3.50 (e.g. U.S.A.)."
    )
    assert ours.word_tokenize(tricky) == stock.word_tokenize(tricky)
    assert "Mr." in ours.word_tokenize(tricky) and "’s" in ours.word_tokenize(tricky)
    # Sentences (C4 counts them per line): spaCy's sentencizer rule over the cached splits
    lines = [line.strip() for t in texts for line in t.splitlines() if line.strip()][::20]
    odd = ["", " ", "  a", " a ", "a  b. . c", "Hi!  ?x", "\tx.\n\n y", "x.\u00a0Y", "“Yes.” No", "(a.) b"]
    for text in sorted(eval_pages.values())[::6] + lines + odd + [tricky]:
        assert ours.span_tokenize(text) == stock.span_tokenize(text), text
        assert ours.sent_tokenize(text) == stock.sent_tokenize(text), text
