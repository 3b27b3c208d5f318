"""lmfoundry: raw text to a language model anyone can load with ``AutoModelForCausalLM``.

``import lmfoundry`` is cheap: it imports neither torch nor transformers, so ``lmfoundry --help``
starts at once. The model classes load on first use, as ``from lmfoundry import FoundryConfig,
FoundryModel, FoundryForCausalLM`` (or ``lmfoundry.FoundryConfig``).

The package also makes transformers' Auto classes know Foundry, so after ``import lmfoundry``,
``AutoModelForCausalLM.from_pretrained(folder)`` loads a saved Foundry folder without
``trust_remote_code``. Registering the classes the ordinary way (``AutoConfig.register``) needs
them imported, which costs torch; instead Foundry is entered as transformers enters its own models:
by name (``"foundry" -> "FoundryConfig"`` in the name tables of ``configuration_auto`` and
``modeling_auto``, added right after transformers executes those modules), with the classes behind
a module ``transformers.models.foundry`` that this package serves. transformers imports that module
only when a lookup asks for ``model_type="foundry"``; it then imports ``lmfoundry.modeling``,
which registers the classes the ordinary way too. When transformers' Auto tables are already
loaded (torch with them), ``import lmfoundry`` registers directly. The classes are never imported
while transformers is partway through importing itself (``transformers.modeling_layers`` imports
``modeling_auto`` before it is complete, and the model needs ``modeling_layers``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from lmfoundry.version import __version__

if TYPE_CHECKING:
    from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM, FoundryModel, FoundryPreTrainedModel

__all__ = ["FoundryConfig", "FoundryForCausalLM", "FoundryModel", "FoundryPreTrainedModel", "__version__"]
_MODEL_NAMES = frozenset(__all__) - {"__version__"}  # served by __getattr__ from lmfoundry.modeling

_MODEL_TYPE = "foundry"  # FoundryConfig.model_type, spelled here so that reading it costs no torch
_MODULE_FOR_TRANSFORMERS = f"transformers.models.{_MODEL_TYPE}"  # where transformers looks for a model type
_CONFIG_AUTO = "transformers.models.auto.configuration_auto"
_MODELING_AUTO = "transformers.models.auto.modeling_auto"


def __getattr__(name: str) -> Any:
    """The model classes, imported on first access (``from lmfoundry import FoundryConfig``)."""
    if name in _MODEL_NAMES:
        return getattr(importlib.import_module("lmfoundry.modeling"), name)
    raise AttributeError(f"module 'lmfoundry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODEL_NAMES})


# transformers module -> {name table in it: the Foundry class to enter under _MODEL_TYPE}
_NAME_TABLES: dict[str, dict[str, str]] = {
    _CONFIG_AUTO: {"CONFIG_MAPPING_NAMES": "FoundryConfig"},
    _MODELING_AUTO: {"MODEL_MAPPING_NAMES": "FoundryModel", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": "FoundryForCausalLM"},
}


def _add_names(module: ModuleType) -> None:
    """Enter Foundry in ``module``'s name tables. A transformers without such a table loses only
    the registration (say so), never its own import."""
    for table, class_name in _NAME_TABLES[module.__name__].items():
        names = getattr(module, table, None)
        if names is None:
            warnings.warn(
                f"lmfoundry: {module.__name__} has no {table}; import lmfoundry.modeling before loading a "
                "Foundry folder with the Auto classes",
                stacklevel=2,
            )
            continue
        names.setdefault(_MODEL_TYPE, class_name)


class _AfterExec(importlib.abc.Loader):
    """Runs ``then(module)`` after the wrapped loader executed ``module``; else the loader itself."""

    def __init__(self, loader: importlib.abc.Loader, then: Callable[[ModuleType], None]) -> None:
        self._loader, self._then = loader, then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = module.__spec__.loader = self._loader  # leave no trace of the wrapper
        self._loader.exec_module(module)
        self._then(module)


class _FoundryModuleLoader(importlib.abc.Loader):
    """``transformers.models.foundry``: the public names of ``lmfoundry.modeling`` (importing it registers them)."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        modeling = importlib.import_module("lmfoundry.modeling")
        module.__dict__.update({name: getattr(modeling, name) for name in modeling.__all__})


class _FoundryAutoFinder(importlib.abc.MetaPathFinder):
    """Serves ``transformers.models.foundry`` and adds Foundry's names to transformers' Auto tables."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == _MODULE_FOR_TRANSFORMERS:
            return importlib.util.spec_from_loader(fullname, _FoundryModuleLoader())
        if fullname not in _NAME_TABLES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _AfterExec(spec.loader, _add_names)
                return spec
        return None


def _register_with_transformers() -> None:
    if _CONFIG_AUTO in sys.modules:  # Auto tables already built (and torch imported): register the classes
        importlib.import_module("lmfoundry.modeling")
        return
    if not any(type(finder).__name__ == _FoundryAutoFinder.__name__ for finder in sys.meta_path):
        sys.meta_path.insert(0, _FoundryAutoFinder())


_register_with_transformers()
