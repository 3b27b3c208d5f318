"""Model card and Hub push: ``write_model_card`` (used by ``lmfoundry run``'s export) and ``push_to_hub``.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "write_model_card": "lmfoundry.hub.card",
    "HubConfig": "lmfoundry.hub.config",
    "prepare_upload": "lmfoundry.hub.push",
    "push_to_hub": "lmfoundry.hub.push",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
