"""A model folder's own code runs only when asked: a Foundry folder loads through lmfoundry's classes, never
through the copy of the code it carries. (A folder with foreign code is refused by generate, chat and eval with
one line naming --trust-remote-code: rows of tests/test_bad_input_matrix.py.)"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from test_hub_fixtures import build_tiny_model

from lmfoundry.cli import main
from lmfoundry.generation import load_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trust") / "model"
    build_tiny_model(folder)
    return folder


def plant(folder: Path, marker: Path) -> None:
    """Append a line to the folder's modeling code that leaves ``marker`` behind when it runs."""
    with open(folder / "modeling_foundry.py", "a", encoding="utf-8") as f:
        f.write(f"\nopen({str(marker)!r}, 'w').write('ran')\n")


def test_a_foundry_folder_with_planted_code_loads_through_the_installed_classes(model_dir, tmp_path, capsys):
    folder = tmp_path / "planted"
    shutil.copytree(model_dir, folder)
    marker = tmp_path / f"ran-{uuid.uuid4().hex}"
    plant(folder, marker)
    model, _ = load_model(str(folder), "cpu")
    assert type(model).__module__ == "lmfoundry.modeling.modeling_foundry"
    assert main(["generate", "--model", str(folder), "--prompt", "In the", "--max-new-tokens", "2",
                 "--device", "cpu"]) == 0
    assert not marker.exists()  # the folder's copy of the code never ran
