"""Model card and Hub push: ``write_model_card`` (used by ``lmfoundry run``'s export) and ``push_to_hub``.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

from lmfoundry.lazy import lazy_exports

_EXPORTS = {
    "write_model_card": "lmfoundry.hub.card",
    "HubConfig": "lmfoundry.hub.config",
    "prepare_upload": "lmfoundry.hub.push",
    "push_to_hub": "lmfoundry.hub.push",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
