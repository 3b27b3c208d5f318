"""The URL blocklist's two fixed costs, paid once instead of once per task.

datatrove's ``URLFilter`` reads its integrated domain blocklist (4.5 million lines, 120 MB) into a
Python set in every task that sees a URL: seconds of CPU and about half a gigabyte of memory per
worker, before the first page is judged, and it builds tldextract's public-suffix trie per filter
instance. On a crawl of a few hundred pages those two costs were most of the curation's time.

* :class:`SortedLines` answers "is this line in the file?" by binary search over a memory map of
  the file, with no load at all. It is exact only for a file whose lines are unique, sorted
  bytewise, ASCII and free of whitespace and ``#`` comments (datatrove's ``domains`` list is); a
  file is checked once, and the check is remembered beside it (keyed by size and modification
  time), so later processes skip it. A file that fails the check is read into a set, as datatrove does.
* :data:`EXTRACTOR` is one tldextract extractor per process, over the public-suffix snapshot in
  tldextract's wheel (no fetch), its trie built when this module is imported. The local executor's
  fork server imports it once (``preload``) so every worker starts with it built.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
from pathlib import Path

from tldextract import TLDExtract

logger = logging.getLogger(__name__)

# ASCII characters that ``str.strip`` removes, besides the line end: a line holding one is not
# what datatrove's ``x.strip()`` would store, so such a file is not searched as it is.
_STRIPPED = re.compile(rb"[ \t\r\x0b\x0c\x1c-\x1f]")
_MARKER_SUFFIX = ".lmfoundry-sorted"

EXTRACTOR = TLDExtract(suffix_list_urls=(), cache_dir=None)
EXTRACTOR("https://example.com/")  # builds the suffix trie now (it is otherwise built on first use)


class SortedLines:
    """Exact membership in a file of lines, by binary search when the file allows it (see module doc).

    ``key in lines`` is what ``key in {line.strip() for line in open(path) if line[0] != "#"}``
    would say, datatrove's ``parse_list(..., do_normalize=False)``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        stat = self.path.stat()
        self._marker = self.path.with_name(f"{self.path.name}{_MARKER_SUFFIX}-{stat.st_size}-{stat.st_mtime_ns}")
        self._set: set[str] | None = None
        self._map: mmap.mmap | None = None
        if stat.st_size == 0:
            self._set = set()
        elif self._marker.is_file() or self._check_and_remember():
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        else:
            logger.info("%s is not a sorted list of plain lines; reading it into memory", self.path)
            with open(self.path, encoding="utf-8") as f:
                self._set = {line.strip() for line in f if line[0] != "#"}

    def _check_and_remember(self) -> bool:
        """True when the lines are unique, bytewise sorted, ASCII, unstripped-equal and not comments."""
        data = self.path.read_bytes()
        if not data.isascii() or _STRIPPED.search(data):
            return False
        lines = data.removesuffix(b"\n").split(b"\n")
        if not all(lines) or data.startswith(b"#") or b"\n#" in data:
            return False
        if not all(map(bytes.__lt__, lines, lines[1:])):
            return False
        try:  # remember the check for the next process; a read-only folder only costs the re-check
            tmp = self._marker.with_name(f"{self._marker.name}.{os.getpid()}.tmp")
            tmp.write_bytes(b"")
            os.replace(tmp, self._marker)
        except OSError:
            pass
        return True

    def __contains__(self, key: object) -> bool:
        if self._set is not None:
            return key in self._set
        if not isinstance(key, str) or not key.isascii() or not key or _STRIPPED.search(key.encode()):
            return False  # every line of a checked file is non-empty, ASCII and unstripped
        return self._find(key.encode())

    def _find(self, key: bytes) -> bool:
        data = self._map
        lo, hi = 0, len(data)  # both are line starts (or the end); the key's line lies between them
        while lo < hi:
            mid = (lo + hi) // 2
            start = data.rfind(b"\n", lo, mid) + 1 or lo
            end = data.find(b"\n", mid, hi)
            if end < 0:  # the last line, without a line end
                end = hi
            line = data[start:end]
            if line == key:
                return True
            if line < key:
                lo = end + 1
            else:
                hi = start
        return False
