"""End-to-end curation: real book text and real Python source through the default rules."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from lmfoundry.cli import main
from lmfoundry.data.curation import CurateConfig, curate
from lmfoundry.data.curation.filters import LanguageID
from lmfoundry.data.curation.words import RegexWordTokenizer
from lmfoundry.data.default_corpus import bible_jsonl_path

STDLIB_MODULES = [
    "argparse.py",
    "textwrap.py",
    "shlex.py",
    "fractions.py",
    "bisect.py",
    "heapq.py",
    "glob.py",
]
FRENCH = (
    "Le petit village se trouvait au bord de la rivière, et chaque soir les enfants descendaient vers l'eau "
    "pour regarder la lumière disparaître derrière les collines. Leurs parents travaillaient dans les champs "
    "pendant la journée et racontaient des histoires au coin du feu, des histoires transmises depuis des "
    "générations. Personne ne savait exactement d'où elles venaient, mais tout le monde les connaissait par cœur."
)


LETTER = (
    "Dear members of the garden club,\n"
    "Thank you all for coming to the spring meeting last week. It was wonderful to see so many new faces, "
    "and the talk about growing tomatoes in small spaces was a great success.\n"
    "The next meeting will be held on the first Saturday of May in the church hall. We will share seeds, "
    "plan the summer show and vote on a new treasurer, so please try to attend if you can.\n"
    "If you have questions, write to john.smith@gmail.com or look at the notes on our server at "
    "93.184.216.34, which the library hosts for us. The printer in the hall is at 192.168.0.1 on the local "
    "network, and anyone may use it during the meeting.\n"
    "With best wishes from the committee, and see you in May.\n"
)


def write_books(folder: Path, chapters: int) -> list[str]:
    """The first Bible chapters, one verse per line, as the built-in corpus lays them out."""
    folder.mkdir(parents=True, exist_ok=True)
    by_chapter: dict[tuple[str, int], list[str]] = {}
    with open(bible_jsonl_path(), encoding="utf-8") as f:
        for line in f:
            verse = json.loads(line)
            key = (verse["book"], int(verse["chapter"]))
            if key not in by_chapter and len(by_chapter) == chapters:
                break
            by_chapter.setdefault(key, []).append(verse["text"].strip())
    names = []
    for i, ((book, chapter), verses) in enumerate(by_chapter.items()):
        name = f"{i:03d}-{book.lower().replace(' ', '-')}-{chapter}.txt"
        (folder / name).write_text(
            f"{book}, chapter {chapter}\n\n" + "\n".join(verses) + "\n", encoding="utf-8"
        )
        names.append(name)
    return names


def write_code(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in STDLIB_MODULES:
        shutil.copyfile(stdlib / name, folder / name)


def write_corpus(root: Path, chapters: int = 30) -> dict[str, Path]:
    books, code = root / "books", root / "code"
    names = write_books(books, chapters)
    write_code(code)
    chapter = (books / names[2]).read_text(encoding="utf-8")  # Genesis 3 (Genesis 1 is too repetitive)
    web = [
        {"text": chapter, "id": "copy-of-chapter-3", "url": "https://example.org/genesis-3"},
        {"text": FRENCH, "id": "french", "url": "https://example.fr/village"},
        {"text": LETTER, "id": "with-pii", "url": "https://example.org/letter"},
    ]
    jsonl = root / "web.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in web), encoding="utf-8")
    return {"books": books, "code": code, "jsonl": jsonl}


# datatrove's integrated URL blocklists hold 4.5 million domains and take ~10 s to load per task:
# the tests block their own domains instead.
FAST_URL = {"url": {"use_integrated_lists": False}}


def records_of(out: Path) -> list[dict]:
    found = []
    for path in sorted(out.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            found.extend(json.loads(line) for line in f)
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def curated(corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("curated") / "out"
    config = CurateConfig(inputs=[str(p) for p in corpus.values()], filters=FAST_URL, workers=1, tasks=3)
    config.progress = False
    return out, curate(config, out)


def test_books_and_code_pass_the_default_rules(curated, corpus):
    out, stats = curated
    by_source = stats["by_source"]
    books, code = by_source[str(corpus["books"])], by_source[str(corpus["code"])]
    assert books["documents_read"] == 30 and books["documents_out"] >= 26
    assert code["documents_read"] == len(STDLIB_MODULES) and code["documents_out"] == len(STDLIB_MODULES)
    records = records_of(out)
    assert len(records) == stats["output"]["documents"]
    assert {r["source"] for r in records} == {str(p) for p in corpus.values()}
    py = next(r for r in records if r["metadata"].get("path") == "argparse.py")
    assert py["metadata"]["language"] == "python" and py["metadata"]["kind"] == "code"
    source = (corpus["code"] / "argparse.py").read_text(encoding="utf-8")
    assert py["text"].splitlines()[5:] == source.splitlines()[5:]  # whole file; authors' e-mails scrubbed
    assert "steven.bethard@gmail.com" in source and "steven.bethard@gmail.com" not in py["text"]
    # code never met a prose rule, prose never met a code rule
    stages = {s["name"]: s for s in stats["stages"]}
    assert stages["code@code"]["documents_in"] == len(STDLIB_MODULES)
    assert stages["gopher_quality@book"]["documents_in"] <= 30  # the chapters: books
    assert stages["gopher_quality@web"]["documents_in"] <= 3  # the jsonl records: web
    assert stats["read"]["by_kind"]["book"]["documents"] == 30


def test_language_pii_and_duplicates_across_sources(curated):
    out, stats = curated
    records = {r["id"]: r for r in records_of(out)}
    assert "french" not in records
    assert stats["dropped"]["language:not_en"]["documents"] == 1
    # a chapter and its exact copy from another source: one of the two is kept
    assert ("copy-of-chapter-3" in records) + any(k.endswith("002-genesis-3.txt") for k in records) == 1
    assert stats["dropped"]["dedup:exact"]["documents"] == 1
    pii = records["with-pii"]["text"]
    assert "john.smith@gmail.com" not in pii and "93.184.216.34" not in pii
    assert "192.168.0.1" in pii  # private addresses are not personal data
    assert records["with-pii"]["metadata"]["url"] == "https://example.org/letter"
    assert records["with-pii"]["metadata"]["language"] == "en"


def test_stats_account_for_every_document(curated):
    out, stats = curated
    assert stats["complete"] and (out / "stats.json").is_file()
    assert json.loads((out / "stats.json").read_text()) == stats
    for source, entry in stats["by_source"].items():
        dropped = sum(entry["dropped"].values())
        assert entry["documents_read"] == entry["documents_out"] + dropped, source
    for stage in stats["stages"]:
        dropped = sum(v["documents"] for v in stage["dropped"].values())
        assert stage["documents_in"] == stage["documents_out"] + dropped, stage["name"]
    assert stats["output"]["files"] == sorted(p.name for p in out.glob("*.jsonl.gz"))
    assert not (out / ".curate" / "filtered").exists()  # intermediates are cleaned up


def test_rerun_of_a_complete_folder_does_nothing(curated, corpus):
    out, stats = curated
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"}  # the lock names its holder
    again = curate(
        CurateConfig(inputs=[str(p) for p in corpus.values()], filters=FAST_URL, workers=1, tasks=3), out
    )
    assert again == stats
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"} == before


def test_two_workers_several_tasks_parquet_and_exclusions(corpus, tmp_path):
    config = CurateConfig(
        inputs=[str(corpus["books"]), str(corpus["jsonl"])],
        filters=FAST_URL,
        workers=2,
        tasks=4,
        output_format="parquet",
        exclusion_dir=str(tmp_path / "excluded"),
        progress=False,
    )
    stats = curate(config, tmp_path / "out")
    import pyarrow.parquet as pq

    table = pq.read_table(sorted((tmp_path / "out").glob("*.parquet")))
    assert table.num_rows == stats["output"]["documents"] >= 28
    assert {"text", "id", "source", "metadata"} <= set(table.column_names)
    excluded = {}
    for path in (tmp_path / "excluded").rglob("*.jsonl.gz"):
        with gzip.open(path, "rt") as f:
            excluded.update({json.loads(line)["id"]: json.loads(line) for line in f})
    assert excluded["french"]["metadata"]["filter_reason"] == "language:not_en"
    copies = [
        excluded.get("copy-of-chapter-3"),
        *(v for k, v in excluded.items() if k.endswith("genesis-3.txt")),
    ]
    assert [c["metadata"]["filter_reason"] for c in copies if c] == ["dedup:exact"]
    total_dropped = sum(v["documents"] for v in stats["dropped"].values())
    assert len(excluded) == total_dropped


def test_cli_curate_with_recipe_and_flags(corpus, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "data:\n  filters:\n    gopher_quality: false\n  dedup:\n    minhash: false\n  tasks: 2\n"
    )
    out = tmp_path / "out"
    args = ["data", "curate", str(recipe), "--input", str(corpus["code"]), "--output", str(out)]
    code = main([*args, "--workers", "1", "--data.progress", "false"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "kept 7 documents" in printed and "docs in" in printed
    stats = json.loads((out / "stats.json").read_text())
    assert not any(s["name"].startswith("gopher_quality") for s in stats["stages"])
    assert stats["config"]["dedup"] == {"minhash": False}

    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  filters:\n    gopher: {}\n")
    o2, o3 = str(tmp_path / "o2"), str(tmp_path / "o3")
    assert main(["data", "curate", str(bad), "--input", str(corpus["code"]), "--output", o2]) == 2
    assert "unknown filter(s) or kind(s) gopher" in capsys.readouterr().err
    assert main(["data", "curate", "--input", str(tmp_path / "missing"), "--output", o3]) == 2
    assert "curation input not found" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


RESUME_SCRIPT = """
import sys
from lmfoundry.data.curation import CurateConfig, curate

if __name__ == "__main__":
    config = CurateConfig(inputs=sys.argv[2:], filters={"url": {"use_integrated_lists": False}}, workers=1, tasks=3)
    config.progress = False
    curate(config, sys.argv[1])
"""


def test_rerun_after_sigkill_skips_finished_tasks_and_matches(curated, corpus, tmp_path):
    reference_out, reference = curated  # the same config, run without interruption
    inputs = [str(p) for p in corpus.values()]
    out = tmp_path / "out"
    script = tmp_path / "run_curate.py"
    script.write_text(RESUME_SCRIPT)
    marker = out / ".curate" / "logs" / "filter" / "completions" / "00000"
    proc = subprocess.Popen([sys.executable, str(script), str(out), *inputs], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the first task never finished"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "stats.json").exists()  # the interrupted folder does not look complete
    finished_at = marker.stat().st_mtime_ns

    resumed = curate(CurateConfig(inputs=inputs, filters=FAST_URL, workers=1, tasks=3, progress=False), out)
    assert marker.stat().st_mtime_ns == finished_at  # task 0 was not run again
    assert sorted((r["id"], r["text"]) for r in records_of(out)) == sorted(
        (r["id"], r["text"]) for r in records_of(reference_out)
    )
    for key in ("read", "stages", "dropped", "by_source", "output"):
        assert resumed[key] == reference[key], key


def test_language_id_is_offline_and_bundled():
    lid = LanguageID(languages=["en"])
    assert LanguageID.model_path().name == "lid.176.ftz"
    assert lid.predict("In the beginning God created the heaven and the earth.")["en"] > 0.65
    assert max(lid.predict(FRENCH).items(), key=lambda kv: kv[1])[0] == "fr"


def test_regex_word_tokenizer_splits_like_spacy():
    tok = RegexWordTokenizer()
    text = (
        "Hello, world! Don't you think it's well-known? Visit https://example.com/a?b=1. It costs $3.50 "
        '(or 1,000 yen)... "Quoted" text; e.g. this. Moses\' staff -- U.S.A. rocks! I cannot.'
    )
    # spaCy's blank English tokenizer gives exactly this list for the text above
    assert tok.word_tokenize(text) == [
        "Hello", ",", "world", "!", "Do", "n't", "you", "think", "it", "'s", "well", "-", "known", "?",
        "Visit", "https://example.com/a?b=1", ".", "It", "costs", "$", "3.50", "(", "or", "1,000", "yen",
        ")", "...", '"', "Quoted", '"', "text", ";", "e.g.", "this", ".", "Moses", "'", "staff", "--",
        "U.S.A.", "rocks", "!", "I", "can", "not", ".",
    ]  # fmt: skip
    assert tok.sent_tokenize("One here. Two there! Three? Four") == [
        "One here.",
        "Two there!",
        "Three?",
        "Four",
    ]


def test_cached_spacy_words_survive_a_full_cache():
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    from lmfoundry.data.curation import words

    with open(bible_jsonl_path(), encoding="utf-8") as f:
        verses = [json.loads(line)["text"] for line, _ in zip(f, range(60))]
    texts = [" ".join(verses[i : i + 6]) + " Don't stop, Mr. Smith!" for i in range(0, 60, 6)]
    tok, stock = words.CachedSpacyTokenizer(), load_word_tokenizer("en")
    tok.max_cache = 40  # far fewer than one text's distinct chunks: the cache starts over each time
    assert [tok.word_tokenize(t) for t in texts] == [stock.word_tokenize(t) for t in texts]
    assert [tok.span_tokenize(t) for t in texts] == [stock.span_tokenize(t) for t in texts]
    words._CHUNKS.clear()


def test_fast_gopher_repetition_decides_exactly_like_datatrove():
    import random

    from datatrove.data import Document
    from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter

    from lmfoundry.data.curation.filters import GopherRepetition

    rng = random.Random(0)
    with open(bible_jsonl_path(), encoding="utf-8") as f:
        verses = [json.loads(line)["text"] for line, _ in zip(f, range(3000))]
    docs = []
    for _ in range(150):
        start, n = rng.randrange(2900), rng.randint(1, 60)
        lines = verses[start : start + n]
        if rng.random() < 0.4:  # plant repetition of lines, phrases and words
            lines += rng.choice(
                [lines[:3] * rng.randint(1, 8), [" ".join(lines[0].split()[:6])] * 9, ["the"] * 40]
            )
        docs.append("\n".join(lines))
    tok = RegexWordTokenizer()
    stock, ours = GopherRepetitionFilter(language=tok), GopherRepetition(language=tok)
    decisions = [
        (stock.filter(Document(text=t, id="s")), ours.filter(Document(text=t, id="o"))) for t in docs
    ]
    assert all(a == b for a, b in decisions)
    assert 10 < sum(a is not True for a, _ in decisions) < 140  # both kinds of decision were exercised
    # The n-gram counts themselves, on word lists made to collide: datatrove joins the duplicate
    # n-grams without a separator (["ab", "c"] equals ["a", "bc"]), and ties for the top n-gram
    # go to the first one seen.
    from datatrove.pipeline.filters.gopher_repetition_filter import (
        find_all_duplicate,
        find_top_duplicate,
        get_n_grams,
    )

    from lmfoundry.data.curation.filters import _NGrams

    pieces = ["a", "b", "ab", "c", "bc", "abc", "é", "日本", "x"]
    for _ in range(300):
        words = [rng.choice(pieces[: rng.randint(2, len(pieces))]) for _ in range(rng.randint(0, 60))]
        grams = _NGrams(words)
        for n in range(2, 11):
            assert grams.repeated_chars(n) == find_all_duplicate(words, n), (words, n)
            if len(words) >= n:
                assert grams.top_chars(n) == find_top_duplicate(get_n_grams(words, n)), (words, n)


def test_fast_gopher_quality_decides_exactly_like_datatrove():
    import random

    from datatrove.data import Document
    from datatrove.pipeline.filters.gopher_quality_filter import GopherQualityFilter

    from lmfoundry.data.curation.filters import GopherQuality

    rng = random.Random(1)
    with open(bible_jsonl_path(), encoding="utf-8") as f:
        verses = [json.loads(line)["text"] for line, _ in zip(f, range(3000))]
    junk = [
        lambda: "- item\n" * rng.randint(5, 60),
        lambda: "### " * rng.randint(5, 40) + "the and of",
        lambda: "Wait...\n" * rng.randint(3, 30) + " ".join(verses[:3]),
        lambda: " ".join(rng.choice(["123", "4,5", "!!", "$", "x"]) for _ in range(rng.randint(40, 200))),
        lambda: " ".join(rng.choice(["extraordinarily", "incomprehensibilities", "a"]) for _ in range(80)),
        lambda: " ".join(rng.choice(["cat", "dog", "sat", "mat"]) for _ in range(rng.randint(10, 90))),
        lambda: "• point …\n" * rng.randint(2, 20),
    ]
    docs = []
    for _ in range(160):
        start, n = rng.randrange(2900), rng.randint(1, 40)
        docs.append("\n".join(verses[start : start + n]))
        if rng.random() < 0.5:
            docs[-1] = rng.choice(junk)() + ("\n" + docs[-1] if rng.random() < 0.3 else "")
    tok = RegexWordTokenizer()
    for kwargs in ({}, {"min_doc_words": 10, "max_doc_words": 300, "min_stop_words": 4}):
        stock, ours = GopherQualityFilter(language=tok, **kwargs), GopherQuality(language=tok, **kwargs)
        decisions = [
            (stock.filter(Document(text=t, id="s")), ours.filter(Document(text=t, id="o"))) for t in docs
        ]
        assert all(a == b for a, b in decisions)
        reasons = {a[1] for a, _ in decisions if a is not True}
        assert len(reasons) >= 4 and sum(a is True for a, _ in decisions) > 10, reasons


def test_pii_scrub_replaces_exactly_like_datatrove():
    from datatrove.pipeline.formatters.pii import PIIFormatter

    from lmfoundry.data.curation.filters import PIIScrub

    with open(bible_jsonl_path(), encoding="utf-8") as f:
        verses = [json.loads(line)["text"] for line, _ in zip(f, range(200))]
    texts = [LETTER, "no at sign or digits here", "v1.2 and 10.0.0.1 and 8.8.8.8, mail a@b.co", "1.2", ""]
    texts += [" ".join(verses[i : i + 20]) for i in range(0, 200, 20)]
    ours, stock = PIIScrub(), PIIFormatter()  # both cycle their replacements: same order of calls
    assert [ours.format(t) for t in texts] == [stock.format(t) for t in texts]
    assert "john.smith@gmail.com" not in ours.format(LETTER) and "8.8.8.8" not in ours.format(texts[2])


def test_the_rule_names_of_the_config_are_the_filter_classes_in_pipeline_order():
    from lmfoundry.data.curation.config import FILTER_NAMES
    from lmfoundry.data.curation.filters import FILTER_CLASSES, STOCK_FILTER_CLASSES

    assert tuple(FILTER_CLASSES) == tuple(STOCK_FILTER_CLASSES) == FILTER_NAMES


def test_a_complete_folder_of_other_settings_is_refused_and_overwrite_replaces_it_whole(corpus, tmp_path):
    import hashlib

    def checksums(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
                if p.is_file() and p.name != ".lock"}  # the lock file names its latest holder

    out = tmp_path / "out"
    base = {"inputs": [str(corpus["code"])], "filters": FAST_URL, "tasks": 1, "workers": 1, "progress": False}
    curate(CurateConfig(**base), out)
    before = checksums(out)
    assert curate(CurateConfig(**{**base, "workers": 2}), out)["complete"]  # how it runs: the same output
    with pytest.raises(FileExistsError, match=r"stats.json: curated with other settings.*--overwrite"):
        curate(CurateConfig(**{**base, "pii": False}), out)
    # an overwrite that keeps nothing fails and leaves the earlier output byte for byte
    strict = {"code": {"max_line_length": 1}}  # the code rule, for every kind that has it
    with pytest.raises(ValueError, match=r"kept 0 of"):
        curate(CurateConfig(**{**base, "filters": {**FAST_URL, **strict}, "overwrite": True}), out)
    assert checksums(out) == before and not (tmp_path / "out.new").exists()
    stats = curate(CurateConfig(**{**base, "pii": False, "overwrite": True}), out)
    assert stats["config"]["pii"] is False and json.loads((out / "stats.json").read_text())["config"]["pii"] is False
