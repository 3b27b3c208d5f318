"""Recipes: loading, overrides, type coercion and the errors a typo gets."""

from __future__ import annotations

import dataclasses

import pytest

from lmfoundry.pipeline import check_recipe
from lmfoundry.recipe import apply_overrides, dump_recipe, load_recipe, parse_section


@dataclasses.dataclass
class Section:
    lr: float = 1.0
    steps: int = 1
    flag: bool = False
    name: str | None = None
    maybe: int | None = None


def test_builtin_recipes_parse_and_pass_every_section_check():
    for name in ("tiny", "small", "1b"):
        recipe = load_recipe(name)
        check_recipe(recipe)
        assert recipe["model"]["hidden_size"] > 0


def test_overrides_replace_fields_with_yaml_typed_values():
    recipe = load_recipe("tiny", ["--train.max_steps", "7", "--train.lr=1e-3", "--run.stages", "[curate]"])
    assert recipe["train"]["max_steps"] == 7
    assert recipe["run"]["stages"] == ["curate"]
    # PyYAML reads "1e-3" as a string; parse_section coerces it to the declared float.
    parsed = parse_section(Section, {"s": {"lr": recipe["train"]["lr"], "steps": "3", "flag": "yes"}}, "s")
    assert parsed == Section(lr=0.001, steps=3, flag=True)
    assert parse_section(Section, {"s": {"maybe": "4"}}, "s").maybe == 4


def test_yes_no_on_off_stay_strings_where_a_field_wants_a_string(tmp_path):
    """YAML 1.1 would read ``no`` as False; ``mixed_precision: no`` must stay the string "no"."""
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  mixed_precision: no\n  compile: no\n  gradient_checkpointing: false\n")
    recipe = load_recipe(path, ["--data.progress", "off", "--train.report_to", "none"])
    assert recipe["train"] == {"mixed_precision": "no", "compile": "no", "gradient_checkpointing": False,
                               "report_to": "none"}
    assert load_recipe("tiny", ["--train.mixed_precision", "no"])["train"]["mixed_precision"] == "no"
    parsed = parse_section(Section, {"s": {"flag": "no", "name": "on"}}, "s")
    assert parsed.flag is False and parsed.name == "on"
    dump_recipe(recipe, tmp_path / "dumped.yaml")
    assert load_recipe(tmp_path / "dumped.yaml")["train"] == recipe["train"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--nosuch.field", "1"], "unknown section 'nosuch'"),
        (["train.lr", "1"], "expected --section.field VALUE"),
        (["--train.lr"], "has no value"),
    ],
)
def test_bad_overrides_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides({}, overrides)


def test_unknown_fields_and_bad_values_name_the_field():
    with pytest.raises(ValueError, match=r"section 's': unknown field\(s\) bogus; allowed: flag, lr"):
        parse_section(Section, {"s": {"bogus": 1}}, "s")
    with pytest.raises(ValueError, match=r"s\.steps: expected int, got 'many'"):
        parse_section(Section, {"s": {"steps": "many"}}, "s")
    with pytest.raises(ValueError, match=r"s\.flag: expected true or false"):
        parse_section(Section, {"s": {"flag": "perhaps"}}, "s")


def test_recipe_file_errors_name_the_file(tmp_path):
    bad_section = tmp_path / "r.yaml"
    bad_section.write_text("trian:\n  lr: 1\n")
    with pytest.raises(ValueError, match=r"r\.yaml: unknown section 'trian'"):
        load_recipe(bad_section)
    not_yaml = tmp_path / "n.yaml"
    not_yaml.write_text("train: [unclosed\n")
    with pytest.raises(ValueError, match=r"n\.yaml: not valid YAML"):
        load_recipe(not_yaml)
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        load_recipe(tmp_path / "missing.yaml")
    with pytest.raises(FileNotFoundError, match=r"no built-in recipe named 'huge'; available: 1b, auto, small, tiny"):
        load_recipe("huge")


def test_check_recipe_catches_mistakes_in_any_stage_before_work_starts():
    recipe = load_recipe("tiny", ["--model.num_attention_heads", "5"])
    with pytest.raises(ValueError, match="num_attention_heads"):
        check_recipe(recipe)
    with pytest.raises(ValueError, match="unknown stage"):
        check_recipe(load_recipe("tiny", ["--run.stages", "[curate, bake]"]))
    with pytest.raises(ValueError, match="learning_rate"):
        check_recipe(load_recipe("tiny", ["--train.learning_rate", "1"]))
    with pytest.raises(ValueError, match=r"data\.filters"):
        check_recipe(load_recipe("tiny", ["--data.filters", "{nosuchfilter: {}}"]))


def test_dump_recipe_round_trips(tmp_path):
    recipe = load_recipe("tiny")
    dump_recipe(recipe, tmp_path / "recipe.yaml")
    assert load_recipe(tmp_path / "recipe.yaml") == recipe


@pytest.mark.parametrize(("override", "message"), [
    (["--train.max_steps", "10.5"], r"train.max_steps: expected an integer, got 10.5"),
    (["--train.compile", "maybe"], r"train.compile: expected true or false, got 'maybe'"),
    (["--model.tie_word_embeddings", '"no"'], None),  # a quoted "no" is still the bool False, never a string
    (["--model.hidden_size", "64.5"], r"model.hidden_size: expected an integer, got 64.5"),
    (["--model.qk_norm", "sometimes"], r"model.qk_norm: expected true or false, got 'sometimes'"),
])
def test_values_of_the_wrong_type_are_refused_or_read_as_their_type(override, message):
    recipe = load_recipe("tiny", override)
    if message is None:
        check_recipe(recipe)
        from lmfoundry.modeling import FoundryConfig
        from lmfoundry.recipe import coerce_fields

        assert coerce_fields(FoundryConfig, recipe["model"], "model")["tie_word_embeddings"] is False
        return
    with pytest.raises(ValueError, match=message):
        check_recipe(recipe)
