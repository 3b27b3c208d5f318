"""Package exports imported on first use, so importing a package (and its cli) loads none of its heavy modules.

``lmfoundry --help`` imports every stage's ``cli`` module, which imports its package: each package
``__init__`` therefore names its exports here and leaves the import to the first attribute access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``name`` from module ``exports[name]``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
