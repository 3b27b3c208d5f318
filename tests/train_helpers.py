"""``train()`` on a recipe dict, the way ``lmfoundry train RECIPE`` calls it (through ``train_sections``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmfoundry.training import train, train_sections


def train_recipe(recipe: dict[str, Any], output_dir: str | Path, **options: Any) -> dict[str, Any]:
    config, model = train_sections(recipe, output_dir)
    return train(config, output_dir, model, **options)
