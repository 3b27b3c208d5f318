"""Data curation: raw sources to clean, deduplicated documents (built on datatrove).

``curate(CurateConfig(inputs=[...]), "out/")`` writes ``out/NNNNN.jsonl.gz`` and ``out/stats.json``;
``lmfoundry data curate`` is the same from the command line.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

from lmfoundry.lazy import lazy_exports

_EXPORTS = {
    "CurateConfig": "lmfoundry.data.curation.config",
    "CurationError": "lmfoundry.data.curation.pipeline",
    "curate": "lmfoundry.data.curation.pipeline",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
