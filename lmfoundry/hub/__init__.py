"""Model card and Hub push: ``write_model_card`` (used by ``lmfoundry run``'s export) and ``push_to_hub``."""

from lmfoundry.hub.card import write_model_card
from lmfoundry.hub.push import HubConfig, prepare_upload, push_from_recipe, push_to_hub

__all__ = ["HubConfig", "prepare_upload", "push_from_recipe", "push_to_hub", "write_model_card"]
