"""The Foundry model: config, base model, causal LM, and conversion to and from Llama checkpoints.

Importing this package registers Foundry with transformers' Auto classes, so
``AutoModelForCausalLM.from_pretrained(folder)`` works on a saved Foundry folder without
``trust_remote_code`` wherever lmfoundry is installed; ``register_for_auto_class`` makes
``save_pretrained`` copy the two self-contained modeling files and write ``auto_map``, so the same
folder also loads with ``trust_remote_code=True`` where lmfoundry is not installed. (``import
lmfoundry`` alone suffices for the Auto classes: it has transformers import this package on the
first lookup of ``model_type="foundry"``; see ``lmfoundry/__init__.py``.)
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from lmfoundry.modeling.configuration_foundry import FoundryConfig
from lmfoundry.modeling.modeling_foundry import FoundryForCausalLM, FoundryModel, FoundryPreTrainedModel

AutoConfig.register(FoundryConfig.model_type, FoundryConfig, exist_ok=True)
AutoModel.register(FoundryConfig, FoundryModel, exist_ok=True)
AutoModelForCausalLM.register(FoundryConfig, FoundryForCausalLM, exist_ok=True)
FoundryConfig.register_for_auto_class()
FoundryModel.register_for_auto_class("AutoModel")
FoundryForCausalLM.register_for_auto_class("AutoModelForCausalLM")

__all__ = ["FoundryConfig", "FoundryForCausalLM", "FoundryModel", "FoundryPreTrainedModel"]
