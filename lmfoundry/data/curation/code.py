"""What counts as source code in a repository: languages by extension, and what to leave out.

A repository holds much that is not worth training on: vendored dependencies, build output,
lock files, minified bundles. Those are skipped by path here, before anything is read; files
that look fine by path but are binary, over-long or generated are skipped by the reader
(binary, size) and by :class:`~lmfoundry.data.curation.filters.CodeQuality` (content).
"""

from __future__ import annotations

import logging
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

# Directory names whose contents are someone else's code or machine output.
SKIPPED_DIRS = frozenset({
    ".git", ".hg", ".svn", "vendor", "vendors", "node_modules", "third_party", "thirdparty",
    "third-party", "external", "extern", "bower_components", "site-packages", "__pycache__",
    ".venv", "venv", ".tox", ".mypy_cache", ".pytest_cache", "build", "dist", "target", ".idea",
    ".vscode", "generated", "gen", "_build",
})  # fmt: skip
# File-name patterns of generated or minified files.
SKIPPED_SUFFIXES = (".min.js", ".min.css", ".pb.go", "_pb2.py", ".lock", "-lock.json", ".map", ".bundle.js")


def code_language(path: str | Path) -> str | None:
    """The language of a file from its name, or None when it is not a source file we read."""
    path = Path(path)
    return LANGUAGE_BY_NAME.get(path.name) or LANGUAGE_BY_EXTENSION.get(path.suffix.lower())


def skipped_by_path(relative: str | Path) -> str | None:
    """Why a repository file is left out by its path alone (vendored, generated), or None."""
    relative = Path(relative)
    if any(part in SKIPPED_DIRS for part in relative.parts[:-1]):
        return "vendored_or_build_dir"
    if relative.name.lower().endswith(SKIPPED_SUFFIXES):
        return "generated_or_minified_name"
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
