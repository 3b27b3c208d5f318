"""A model folder's own code runs only when asked: a Foundry folder loads through lmfoundry's classes, a folder
with foreign code is refused with one line naming --trust-remote-code."""

from __future__ import annotations

import json
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


def test_foreign_code_is_refused_without_the_flag(model_dir, tmp_path, capsys):
    folder = tmp_path / "foreign"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "not-foundry"}))
    marker = tmp_path / f"ran-{uuid.uuid4().hex}"
    plant(folder, marker)
    for verb in (["generate", "--prompt", "In the"], ["chat"]):
        assert main([verb[0], "--model", str(folder), *verb[1:], "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("lmfoundry: error:")]
        assert len(lines) == 1 and str(folder) in lines[0] and "--trust-remote-code" in lines[0], err
    assert main(["eval", "--model", str(folder), "--tasks", "bpb", "--bpb-data", str(model_dir),
                 "--output", str(tmp_path / "r.json")]) == 2
    assert "trust" in capsys.readouterr().err
    assert not marker.exists()
