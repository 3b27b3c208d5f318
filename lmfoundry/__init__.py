"""lmfoundry: raw text to a language model anyone can load with ``AutoModelForCausalLM``.

Importing the package registers ``FoundryConfig``/``FoundryModel``/``FoundryForCausalLM`` with the
transformers Auto classes, so ``AutoModelForCausalLM.from_pretrained`` works on a saved Foundry
folder without ``trust_remote_code`` when lmfoundry is installed.
"""

from lmfoundry import modeling  # noqa: F401  (registers the Auto classes)
from lmfoundry.version import __version__

__all__ = ["__version__"]
