"""The package's shape: the layering contract holds, and every verb follows the one command-line convention."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lmfoundry.cli import all_verbs, main
from lmfoundry.command import build_verb_parser, section_fields

ROOT = Path(__file__).resolve().parents[1]


def test_import_layering_contract_holds():
    """pyproject.toml's import-linter contracts: modeling imports nothing of lmfoundry, no circles, …"""
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


@pytest.mark.parametrize("name", list(all_verbs()))
def test_every_verb_lists_every_field_of_its_sections_with_a_doc(name):
    verb = all_verbs()[name]
    text = build_verb_parser(verb, "lmfoundry").format_help()
    for section in verb.sections:
        for spec in section_fields(section):
            assert f"--{section}.{spec.name}" in text, (section, spec.name)
            if section != "model":  # FoundryConfig documents its fields in its docstring
                assert spec.doc, f"recipe field {section}.{spec.name} has no doc comment"


def test_a_verb_alone_gets_the_folders_of_the_run_layout(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"run:\n  output: {tmp_path / 'run'}\n")
    # no shards in RUN/shards yet: the error names the layout's folder, as `lmfoundry run` would use it
    assert main(["train", str(recipe), "--train.max_steps", "1"]) == 2
    assert str(tmp_path / "run" / "shards") in capsys.readouterr().err


def test_a_folder_given_as_the_recipe_is_a_clear_usage_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "is a folder; expected a recipe YAML file" in capsys.readouterr().err


def test_help_and_unknown_verbs(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "data curate" in out and "tokenizer train" in out
    with pytest.raises(SystemExit):  # argparse's own usage error, before any verb is chosen
        main(["data"])
    assert "takes a sub-verb: data curate, data tokenize" in capsys.readouterr().err
