"""What counts as source code in a repository, what is someone else's code, and its license.

Vendored, generated and documentation files are recognised the way GitHub's linguist does, through
go-enry (the ``enry-python`` binding, linguist's ``vendor.yml``/``documentation.yml`` patterns and
generated-file rules), not through a hand-kept folder list; first-party ``build/`` code is kept.
Two additions linguist lacks: Python's ``_vendor``/``_vendored`` packages (pip, setuptools) and
tool caches (``__pycache__``, ``.tox``, virtual environments). Without the binding installed, a
small built-in list of vendor folders stands in (logged once). Prose files of a repository
(Markdown, reST, plain text) are read as ``docs``, judged by prose rules, not code rules.

A repository's license is read from its ``LICENSE``/``COPYING`` file (or, for a package inside
``site-packages``, its ``*.dist-info`` metadata) and recorded as an SPDX id in every document's
``license`` metadata.
"""

from __future__ import annotations

import functools
import logging
import re
import subprocess
from pathlib import Path

logger = logging.getLogger(__name__)

LANGUAGE_BY_EXTENSION: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyx": "cython",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp",
    ".cu": "cuda", ".rs": "rust", ".go": "go", ".java": "java", ".kt": "kotlin", ".scala": "scala",
    ".js": "javascript", ".mjs": "javascript", ".jsx": "javascript", ".ts": "typescript",
    ".tsx": "typescript", ".rb": "ruby", ".php": "php", ".cs": "csharp", ".swift": "swift",
    ".m": "objective-c", ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ps1": "powershell",
    ".pl": "perl", ".lua": "lua", ".r": "r", ".jl": "julia", ".hs": "haskell", ".ml": "ocaml",
    ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".clj": "clojure", ".dart": "dart",
    ".sql": "sql", ".html": "html", ".css": "css", ".scss": "scss", ".vue": "vue",
    ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".ini": "ini", ".cfg": "ini",
    ".cmake": "cmake", ".mk": "makefile", ".tex": "tex", ".rst": "restructuredtext",
    ".md": "markdown", ".txt": "text", ".f90": "fortran", ".zig": "zig", ".nim": "nim",
}  # fmt: skip
LANGUAGE_BY_NAME = {"Makefile": "makefile", "Dockerfile": "dockerfile", "CMakeLists.txt": "cmake"}

PROSE_SUFFIXES = (".md", ".markdown", ".rst", ".txt", ".adoc")
# Not in linguist's vendor list: Python's vendored packages and tool caches / environments.
_EXTRA_VENDOR = re.compile(
    r"(?:^|/)(?:_vendor|_vendored|__pycache__|\.tox|\.nox|\.venv|venv|\.mypy_cache|\.pytest_cache|site-packages)/"
)
# Without go-enry: the folders linguist's vendor.yml matches most often.
_FALLBACK_VENDOR = re.compile(
    r"(?:^|/)(?:vendor|vendors|node_modules|third[_-]?party|bower_components|extern|external|dist)/"
)
SKIPPED_SUFFIXES = (".min.js", ".min.css", ".pb.go", "_pb2.py", ".lock", "-lock.json", ".map", ".bundle.js")


@functools.cache
def _enry():
    try:
        import enry
    except ImportError:
        logger.warning("enry-python is not installed: vendored files are found from a short built-in list")
        return None
    return enry


def code_language(path: str | Path) -> str | None:
    """The language of a file from its name, or None when it is not a source file we read."""
    path = Path(path)
    return LANGUAGE_BY_NAME.get(path.name) or LANGUAGE_BY_EXTENSION.get(path.suffix.lower())


def is_prose_file(path: str | Path) -> bool:
    """Markdown, reST or plain text: read as ``docs``, not as code."""
    return str(path).lower().endswith(PROSE_SUFFIXES)


def skipped_by_path(relative: str | Path) -> str | None:
    """Why a repository file is left out by its path alone (``path_vendored``, ``path_generated``), or None."""
    rel = Path(relative).as_posix()
    enry = _enry()
    if _EXTRA_VENDOR.search(rel) or (enry.is_vendor(rel) if enry else _FALLBACK_VENDOR.search(rel)):
        return "path_vendored"
    if rel.lower().endswith(SKIPPED_SUFFIXES):
        return "path_generated"
    return None


def generated_by_content(relative: str | Path, content: bytes) -> bool:
    """Linguist's generated-file rules, which look at the content (minified, protobuf, lock files...)."""
    enry = _enry()
    return bool(enry and enry.is_generated(Path(relative).as_posix(), content))


# ---- licenses -------------------------------------------------------------------------------
_LICENSE_FILES = re.compile(r"^(?:LICEN[CS]E|COPYING|UNLICENSE)(?:[.-].*)?$", re.I)
# (SPDX id, phrases that all appear in the license text), most specific first.
_LICENSE_TEXTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PSF-2.0", ("python software foundation license",)),  # first: its text discusses the GPL
    ("AGPL-3.0", ("gnu affero general public license", "version 3")),
    ("LGPL-3.0", ("gnu lesser general public license", "version 3")),
    ("LGPL-2.1", ("gnu lesser general public license", "version 2.1")),
    ("GPL-3.0", ("gnu general public license", "version 3")),
    ("GPL-2.0", ("gnu general public license", "version 2")),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("MIT", ("permission is hereby granted, free of charge", "the above copyright notice")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
)


def license_of_text(text: str) -> str | None:
    """The SPDX id of a license text, by the phrases every copy of that license contains."""
    flat = " ".join(text.lower().split())
    for spdx, phrases in _LICENSE_TEXTS:
        if all(phrase in flat for phrase in phrases):
            return spdx
    return None


def repository_license(folder: Path) -> str | None:
    """The SPDX id of a repository's license: its LICENSE/COPYING file, else its dist-info metadata."""
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_file() and _LICENSE_FILES.match(path.name):
            spdx = license_of_text(path.read_text(encoding="utf-8", errors="replace"))
            if spdx:
                return spdx
    # An installed package (site-packages/NAME): the License-Expression / License of NAME-*.dist-info.
    for dist in sorted(folder.parent.glob(f"{folder.name}-*.dist-info")):
        metadata = dist / "METADATA"
        if metadata.is_file():
            for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith(("License-Expression:", "License:")) and line.split(":", 1)[1].strip():
                    value = line.split(":", 1)[1].strip()
                    if len(value) < 40:  # an id, not the whole license text
                        return value
                if not line.strip():
                    break
        for path in sorted(dist.rglob("*")):
            if path.is_file() and _LICENSE_FILES.match(path.name):
                spdx = license_of_text(path.read_text(encoding="utf-8", errors="replace"))
                if spdx:
                    return spdx
    return None


def is_git_checkout(folder: Path) -> bool:
    return (folder / ".git").exists()


def repository_files(folder: Path) -> list[Path]:
    """Files of a code folder, relative to it: ``git ls-files`` in a checkout, else a walk."""
    if is_git_checkout(folder):
        try:
            listing = subprocess.run(
                ["git", "-C", str(folder), "ls-files", "-z"],
                check=True,
                capture_output=True,
            ).stdout
            return sorted(Path(p) for p in listing.decode("utf-8", "replace").split("\0") if p)
        except (OSError, subprocess.CalledProcessError) as err:
            logger.warning("%s: `git ls-files` failed (%s); listing the folder instead", folder, err)
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
