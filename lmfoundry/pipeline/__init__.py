"""``lmfoundry run``: every stage from one recipe (:mod:`lmfoundry.pipeline.runner`), and its run section.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunConfig": "lmfoundry.pipeline.config",
    "StageSubmitted": "lmfoundry.pipeline.runner",
    "check_recipe": "lmfoundry.pipeline.runner",
    "format_summary": "lmfoundry.pipeline.runner",
    "run_pipeline": "lmfoundry.pipeline.runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
