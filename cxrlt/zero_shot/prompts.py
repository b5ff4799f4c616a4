"""Prompt sets: the texts that name each class, kept as data in an editable TOML file.

A file gives ``templates`` and ``negative_templates`` ("{}" takes a class's terms), the
terms per class under ``[classes]``, and, where templates do not fit, a class's prompts in
full under ``[prompts]`` and ``[negative_prompts]``. The built-in set
(``prompt_sets/cxr_lt_2026.toml``) covers both CXR-LT 2026 tasks and documents the format.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cxrlt.data.synonyms import normalise
from cxrlt.errors import CxrltError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BUILTIN = "cxr_lt_2026.toml"
_LISTS = ("templates", "negative_templates")
_TABLES = ("classes", "prompts", "negative_prompts")


@dataclass(frozen=True)
class ClassPrompts:
    """The prompts that describe a class being present (``positive``) and absent
    (``negative``, empty when the file gives none)."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]


@dataclass(frozen=True)
class PromptSet:
    """Each class's prompts, by class name as the file spells it; ``source`` names the file."""

    source: str
    classes: Mapping[str, ClassPrompts]

    def for_classes(self, names: Sequence[str]) -> list[ClassPrompts]:
        """The prompts of ``names`` in order, matched case-, space- and hyphen-insensitively;
        names the set lacks are all listed, with how to add them."""
        by_key = {normalise(name): prompts for name, prompts in self.classes.items()}
        missing = [name for name in names if normalise(name) not in by_key]
        if missing:
            close = difflib.get_close_matches(missing[0], list(self.classes), n=1)
            hint = f"Closest to {missing[0]!r}: {close[0]!r}. " if close else ""
            raise CxrltError(
                f"The prompt set {self.source} has no prompts for {', '.join(map(repr, missing))}"
                f" (it has {len(self.classes)} classes). {hint}Otherwise copy it, add the "
                "classes' terms under [classes], and pass the copy with --prompts FILE."
            )
        return [by_key[normalise(name)] for name in names]


def _strings(value: Any, where: str, source: str) -> tuple[str, ...]:
    if not (
        isinstance(value, list)
        and value
        and all(isinstance(item, str) and item.strip() for item in value)
    ):
        raise CxrltError(f"{source}: {where} must be a non-empty list of texts, got {value!r}.")
    return tuple(value)


def _expand(templates: tuple[str, ...], terms: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(template.replace("{}", term) for term in terms for template in templates)


def parse_prompt_set(content: Mapping[str, Any], source: str) -> PromptSet:
    """A prompt set from a TOML document's content; every mistake names ``source``."""
    unknown = sorted(set(content) - {*_LISTS, *_TABLES})
    if unknown:
        raise CxrltError(
            f"{source}: unknown key(s) {', '.join(unknown)}. Accepted: "
            f"{', '.join((*_LISTS, *_TABLES))}."
        )
    lists = {key: _strings(content[key], key, source) for key in _LISTS if key in content}
    for key, templates in lists.items():
        unplaced = [template for template in templates if "{}" not in template]
        if unplaced:
            raise CxrltError(f"{source}: {key} {unplaced[0]!r} has no '{{}}' for the term.")
    tables = {key: content.get(key, {}) for key in _TABLES}
    for key, table in tables.items():
        if not isinstance(table, dict):
            raise CxrltError(f"{source}: [{key}] must be a table of class = [texts].")
    if tables["classes"] and "templates" not in lists:
        raise CxrltError(f"{source}: [classes] gives terms, so give templates = [...] too.")
    classes: dict[str, ClassPrompts] = {}
    for name in dict.fromkeys([*tables["classes"], *tables["prompts"]]):
        if name in tables["prompts"]:
            positive = _strings(tables["prompts"][name], f"prompts.{name!r}", source)
        else:
            terms = _strings(tables["classes"][name], f"classes.{name!r}", source)
            positive = _expand(lists["templates"], terms)
        if name in tables["negative_prompts"]:
            negative = _strings(
                tables["negative_prompts"][name], f"negative_prompts.{name!r}", source
            )
        elif name in tables["classes"] and "negative_templates" in lists:
            negative = _expand(lists["negative_templates"], tuple(tables["classes"][name]))
        else:
            negative = ()
        classes[name] = ClassPrompts(positive, negative)
    stray = sorted(set(tables["negative_prompts"]) - set(classes))
    if stray:
        raise CxrltError(
            f"{source}: [negative_prompts] names {', '.join(map(repr, stray))}, which have no "
            "positive prompts: add them under [classes] or [prompts]."
        )
    return PromptSet(source, classes)


def load_prompt_set(path: Path | str | None = None) -> PromptSet:
    """The prompt set in the TOML file ``path``, or the built-in one."""
    if path is None:
        file = resources.files("cxrlt.zero_shot") / "prompt_sets" / BUILTIN
        return parse_prompt_set(tomllib.loads(file.read_text("utf-8")), f"built-in {BUILTIN}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise CxrltError(
            f"--prompts {path}: no such file. Give a TOML prompt set (start from "
            f"cxrlt/zero_shot/prompt_sets/{BUILTIN})."
        )
    try:
        content = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CxrltError(f"{path} is not valid TOML: {error}.") from None
    return parse_prompt_set(content, str(path))
