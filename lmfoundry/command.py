"""One command-line convention for every verb, built from the stages' config dataclasses.

    lmfoundry <verb> [RECIPE] [--section.field VALUE ...] [--alias VALUE ...]

- ``RECIPE`` is a YAML file or a built-in recipe name (``auto``, ``tiny``, ``small``, ``1b``); without it every
  field has its default, exactly as under ``lmfoundry run``.
- Every field of every section the verb reads is an option ``--section.field``; ``--help`` lists
  each with its type, default and doc (the doc is the field's comment in the dataclass source).
- The fields people type most also have a short alias (``--input``, ``--workers``…), declared
  once on the field: ``field(..., metadata={"alias": "--workers"})``.
- Folders the stage reads or writes default to the run layout of ``run.output``
  (:class:`lmfoundry.layout.RunLayout`), so a verb run alone and the same stage under ``lmfoundry
  run`` read and write the same places.

Values are YAML scalars applied to the recipe mapping before any section is parsed, so an option is
indistinguishable from a recipe value and gets the same type checks. argparse (stdlib) builds the
parsers: the dotted ``--section.field`` form maps one to one onto recipe paths, which the
dataclass-CLI libraries (tyro, simple-parsing, jsonargparse) spell differently, and they would add
a dependency to every install for what is ~200 lines here.

This module imports only the standard library and :mod:`lmfoundry.recipe`, so ``lmfoundry --help``
stays fast: a verb's config classes are imported only when that verb is parsed.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import io
import re
import tokenize
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from lmfoundry.errors import InputError
from lmfoundry.layout import DEFAULT_RUN_FOLDER, RunLayout

# recipe section -> "module:Class" holding its fields (imported only when a verb reads the section)
SECTION_CLASSES: dict[str, str] = {
    "run": "lmfoundry.pipeline.config:RunConfig",
    "data": "lmfoundry.data.curation.config:CurateConfig",
    "tokenizer": "lmfoundry.tokenization.config:TokenizerConfig",
    "tokenize": "lmfoundry.data.shards.config:TokenizeConfig",
    "model": "lmfoundry.modeling.configuration_foundry:FoundryConfig",
    "train": "lmfoundry.training.config:TrainConfig",
    "eval": "lmfoundry.eval.config:EvalConfig",
    "hub": "lmfoundry.hub.config:HubConfig",
    "generate": "lmfoundry.generation.config:SamplingSettings",
}


@dataclass(frozen=True)
class Option:
    """A verb option that is not a recipe field: a folder the verb reads or writes, a switch, or a value.

    ``folder`` names the :class:`RunLayout` property it defaults to (``"shards"`` -> ``RUN/shards``);
    a value option has a ``default`` and a ``kind`` (its type).
    """

    flag: str
    help: str
    folder: str | None = None
    switch: bool = False
    nargs: str | None = None
    default: Any = None
    kind: type = str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Verb:
    """A command: its name (``"train"``, ``"data curate"``), the sections it reads, its options and runner.

    ``run`` is ``"module:function"``; the function takes an :class:`Invocation` and returns an exit code.
    """

    name: str
    help: str
    run: str
    sections: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    description: str = ""
    takes_recipe: bool = True
    lock: str | None = "output"
    """the option naming the folder the verb writes, locked while it runs (a file: its folder); None: no lock"""
    lock_creates: bool = True
    """whether the locked folder is the verb's output (created for the lock) or an input it writes into"""


@dataclass
class Invocation:
    """What a verb's runner gets: the recipe (options applied), its run layout and the verb's options."""

    recipe: dict[str, dict[str, Any]]
    layout: RunLayout
    options: argparse.Namespace
    recipe_given: bool = False
    section_cache: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        """The parsed dataclass of recipe section ``name`` (types checked, defaults filled)."""
        if name not in self.section_cache:
            self.section_cache[name] = recipe_section(self.recipe, name)
        return self.section_cache[name]

    def locked_folder(self, verb: Verb) -> Path | None:
        """The folder ``verb`` writes (for :func:`lmfoundry.locks.folder_lock`), or ``None``."""
        if verb.lock is None or getattr(self.options, verb.lock, None) is None:
            return None
        path = Path(getattr(self.options, verb.lock))
        return path.parent if path.suffix else path

    def folder(self, dest: str) -> Path:
        """A folder option: the one given on the command line, else its place in the run layout."""
        return Path(getattr(self.options, dest))


def section_class(name: str) -> type:
    module, _, attr = SECTION_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def recipe_section(recipe: dict[str, Any], name: str) -> Any:
    """Recipe section ``name`` as its stage's dataclass (types checked, defaults filled)."""
    from lmfoundry.recipe import parse_section

    return parse_section(section_class(name), recipe, name)


# ---- field documentation ----------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One recipe field as the command line shows it."""

    name: str
    type: str
    default: Any
    doc: str
    alias: str | None = None
    is_list: bool = False
    is_bool: bool = False


@cache
def section_fields(name: str) -> tuple[FieldSpec, ...]:
    """The fields of section ``name`` with their docs: dataclass fields, or a config's ``__init__`` keywords."""
    cls = section_class(name)
    if dataclasses.is_dataclass(cls) and "model_type" not in vars(cls):
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls)
        return tuple(
            FieldSpec(
                name=f.name,
                type=_type_name(hints.get(f.name)),
                default=_default(f),
                doc=docs.get(f.name, ""),
                alias=f.metadata.get("alias"),
                is_list=_is_list(hints.get(f.name)),
                is_bool=hints.get(f.name) is bool,
            )
            for f in dataclasses.fields(cls)
            if f.init
        )
    # A transformers config (the model section): its __init__ keywords, documented in its docstring.
    docs = _docstring_args(cls.__doc__ or "")
    specs = []
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        annotation = param.annotation if param.annotation is not inspect.Parameter.empty else None
        specs.append(FieldSpec(param.name, _type_name(annotation), param.default, docs.get(param.name, ""),
                               is_bool=isinstance(param.default, bool)))
    return tuple(specs)


def field_docs(cls: type) -> dict[str, str]:
    """Each field's doc from the class source: an attribute docstring, else its comments.

    The doc is the string literal right after the field (PEP 257's attribute docstring), else the
    comment at the end of its line, else the comment lines just above it.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass.__module__ == "builtins":
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        comments = _comments(source)
        body = ast.parse(_dedent(source)).body[0].body  # type: ignore[attr-defined]
        for index, node in enumerate(body):
            if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
                continue
            name = node.target.id
            after = body[index + 1] if index + 1 < len(body) else None
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                docs[name] = " ".join(after.value.value.split())
                continue
            end = node.end_lineno or node.lineno
            inline = " ".join(comments.get(line, "") for line in range(node.lineno, end + 1)).strip()
            if inline:
                docs[name] = inline
                continue
            above: list[str] = []
            line = node.lineno - 1
            while line >= 1 and lines[line - 1].strip().startswith("#"):
                above.insert(0, comments.get(line, ""))
                line -= 1
            if above:
                docs[name] = " ".join(above)
    return docs


def _comments(source: str) -> dict[int, str]:
    """Line number (1-based, within ``source``) -> the text of the comment on it."""
    found: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if not text.startswith(("noqa", "type:")):
                found[token.start[0]] = text
    return found


def _dedent(source: str) -> str:
    indent = len(source) - len(source.lstrip())
    return "\n".join(line[indent:] for line in source.splitlines())


def _docstring_args(doc: str) -> dict[str, str]:
    """``name: text`` entries of an ``Args:`` section (continuation lines indented deeper)."""
    docs: dict[str, str] = {}
    current: list[str] = []
    for raw in doc.split("Args:", 1)[-1].splitlines():
        entry = re.match(r"^ {8}([\w /]+?): (.*)$", raw)
        if entry:
            current = [name.strip() for name in entry.group(1).split("/")]
            for name in current:
                docs[name] = entry.group(2).strip()
        elif current and raw.startswith(" " * 12):
            for name in current:
                docs[name] += " " + raw.strip()
        else:
            current = []
    return docs


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _type_name(annotation: Any) -> str:
    if annotation is None:
        return "value"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("pathlib.", "")


def _is_list(annotation: Any) -> bool:
    return any(typing.get_origin(a) in (list, tuple) for a in (annotation, *typing.get_args(annotation)))


# ---- parsers -----------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error, not just its line")


class _Parser(argparse.ArgumentParser):
    """argparse, with usage mistakes raised as :class:`InputError` so they reach the one error boundary."""

    def error(self, message: str) -> typing.NoReturn:
        raise InputError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_verb_parser(verb: Verb, prog: str) -> argparse.ArgumentParser:
    """The parser of one verb: RECIPE, its options, and ``--section.field`` for each section it reads."""
    recipe = " [RECIPE]" if verb.takes_recipe else ""
    parser = _Parser(
        prog=f"{prog} {verb.name}", description=verb.description or verb.help,
        usage=f"%(prog)s{recipe} [options]" + (" [--section.field VALUE ...]" if verb.sections else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if verb.takes_recipe:
        parser.add_argument("recipe", nargs="?", metavar="RECIPE",
                            help="recipe YAML file or built-in name (tiny, small, 1b, auto); default: every field's default")
    add_common_arguments(parser)
    for option in verb.options:
        if option.switch:
            parser.add_argument(option.flag, dest=option.dest, action="store_true", help=option.help)
        elif option.folder is None and option.default is not None:
            parser.add_argument(option.flag, dest=option.dest, type=option.kind, default=option.default,
                                metavar=option.kind.__name__.upper(), help=f"{option.help} (default: {option.default})")
        else:
            where = f" (default: RUN/{getattr(RunLayout(Path('RUN')), option.folder).relative_to('RUN')})" if option.folder else ""
            parser.add_argument(option.flag, dest=option.dest, nargs=option.nargs, metavar="PATH",
                                help=option.help + where)
    taken = {option.flag for option in verb.options}
    for section in verb.sections:
        group = parser.add_argument_group(f"recipe section '{section}'")
        for spec in section_fields(section):
            flags = [f"--{section}.{spec.name}"]
            if spec.alias and spec.alias not in taken:
                flags.append(spec.alias)
                taken.add(spec.alias)
            doc = f"{spec.doc} " if spec.doc else ""
            group.add_argument(
                *flags, dest=f"{section}.{spec.name}", default=argparse.SUPPRESS,
                nargs="?" if spec.is_bool else ("+" if spec.is_list else None),
                const="true" if spec.is_bool else None, metavar=_metavar(spec),
                help=f"{doc}[{spec.type}, default: {_show(spec.default)}]".replace("%", "%%"),
            )
    return parser


def _metavar(spec: FieldSpec) -> str:
    if spec.is_bool:
        return "BOOL"
    for kind in ("int", "float", "list", "dict", "str", "Path"):
        if spec.type.startswith(kind) or spec.type.startswith(f"{kind} ") or spec.type.startswith(f"{kind}["):
            return {"Path": "PATH", "list": "ITEM"}.get(kind, kind.upper())
    return "VALUE"


def _show(value: Any) -> str:
    if isinstance(value, str) and value == "":
        return '""'
    return repr(value) if not isinstance(value, str) else value


def parse_invocation(verb: Verb, argv: list[str], prog: str = "lmfoundry") -> tuple[Invocation, argparse.Namespace]:
    """Parse a verb's arguments into its :class:`Invocation` (recipe loaded, options applied)."""
    from lmfoundry.recipe import apply_values, load_recipe

    parser = build_verb_parser(verb, prog)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _reject_unknown(verb, unknown, parser)
    recipe_arg = getattr(args, "recipe", None)
    if recipe_arg is not None and Path(recipe_arg).is_dir():
        parser.error(f"RECIPE {recipe_arg!r} is a folder; expected a recipe YAML file or a built-in recipe name")
    recipe = load_recipe(recipe_arg) if recipe_arg is not None else {}
    values = {key: value for key, value in vars(args).items() if "." in key}
    apply_values(recipe, values)
    run_output = recipe.get("run", {}).get("output") or DEFAULT_RUN_FOLDER
    layout = RunLayout(Path(str(run_output)))
    options = argparse.Namespace(**{k: v for k, v in vars(args).items() if "." not in k})
    for option in verb.options:
        if option.folder and getattr(options, option.dest, None) is None:
            setattr(options, option.dest, str(getattr(layout, option.folder)))
    return Invocation(recipe, layout, options, recipe_given=recipe_arg is not None), args


def _reject_unknown(verb: Verb, unknown: list[str], parser: argparse.ArgumentParser) -> typing.NoReturn:
    """Name a mistyped ``--section.field`` by its section's real fields, anything else as argparse would."""
    for arg in unknown:
        section, _, name = arg.lstrip("-").partition("=")[0].partition(".")
        if arg.startswith("--") and name and section in verb.sections:
            allowed = ", ".join(spec.name for spec in section_fields(section))
            raise InputError(f"recipe section {section!r}: unknown field(s) {name}; allowed: {allowed}")
        if arg.startswith("--") and name and section in SECTION_CLASSES:
            raise InputError(f"{parser.prog}: --{section}.{name}: {verb.name} does not read the {section!r} section "
                             f"(it reads: {', '.join(verb.sections) or 'no recipe section'})")
    parser.error(f"unrecognized arguments: {' '.join(unknown)}")


def load_runner(verb: Verb) -> Callable[[Invocation], int | None]:
    module, _, attr = verb.run.partition(":")
    return getattr(importlib.import_module(module), attr)
