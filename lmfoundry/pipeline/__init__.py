"""``lmfoundry run``: every stage from one recipe (:mod:`lmfoundry.pipeline.runner`), and its run section.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

from lmfoundry.lazy import lazy_exports

_EXPORTS = {
    "RunConfig": "lmfoundry.pipeline.config",
    "StageSubmitted": "lmfoundry.pipeline.runner",
    "check_recipe": "lmfoundry.pipeline.runner",
    "format_summary": "lmfoundry.pipeline.runner",
    "run_pipeline": "lmfoundry.pipeline.runner",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
