"""Data curation: raw sources to clean, deduplicated documents (built on datatrove).

``curate(CurateConfig(inputs=[...]), "out/")`` writes ``out/NNNNN.jsonl.gz`` and ``out/stats.json``;
``lmfoundry data curate`` is the same from the command line.
"""

from lmfoundry.data.curation.config import CurateConfig
from lmfoundry.data.curation.pipeline import CurationError, curate

__all__ = ["CurateConfig", "CurationError", "curate"]
