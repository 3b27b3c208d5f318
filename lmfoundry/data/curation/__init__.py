"""Data curation: raw sources to clean, deduplicated documents (built on datatrove).

``curate(CurateConfig(inputs=[...]), "out/")`` writes ``out/NNNNN.jsonl.gz`` and ``out/stats.json``;
``lmfoundry data curate`` is the same from the command line.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CurateConfig": "lmfoundry.data.curation.config",
    "CurationError": "lmfoundry.data.curation.pipeline",
    "curate": "lmfoundry.data.curation.pipeline",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
