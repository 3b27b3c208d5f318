"""Model card and Hub push: ``write_model_card`` (used by ``lmfoundry run``'s export) and ``push_to_hub``."""

from lmfoundry.hub.card import write_model_card
from lmfoundry.hub.config import HubConfig
from lmfoundry.hub.push import prepare_upload, push_to_hub

__all__ = ["HubConfig", "prepare_upload", "push_to_hub", "write_model_card"]
