"""Names with parameters: ``ldam-drw:max_m=0.5,s=30`` and lists ``crt,tta:scales=[0.9,1.1]``.

A ``:`` belongs to the name unless ``key=`` follows it, so timm names such as
``hf-hub:timm/x`` pass through. Values are Python literals, else plain strings.

Quoting, from a shell. Lists need no quotes: inside brackets a bare word is a string and a
number stays a number, so ``ignore_columns=[A,B]``, ``[A, B]`` and ``["A","B"]`` are the same
list, ``taus=[0.5,1]`` is numbers, and a comma inside brackets never splits a list of specs
(``--post tau-norm:taus=[0.5,1],temp-scale``). Quotes inside a value are needed only for a
string holding a comma, a bracket, a quote or ``=``, or one that would read as a number,
``None`` or ``True`` (``label='None'``); put the whole argument in single quotes then, as the
shell removes quotes it sees (``--post 'x:name="a,b"'``), and likewise for a space, a tuple's
parentheses, or brackets in zsh, which refuses unquoted ``[A,B]`` as a file pattern that
matches nothing (bash passes it through).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from cxrlt.errors import CxrltError

# What stands before a parameter's '=': checked to be a name by _add_param, so that a typo
# there (an empty or misspelt key) is named as such rather than read as part of a name.
_KEY = re.compile(r"\s*([^\s=:,'\"()\[\]{}]*)\s*=")
_BRACKETS = {"[": "]", "(": ")", "{": "}"}


@dataclass(frozen=True)
class Spec:
    """A registry name and the parameters the user gave it."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        pairs = ",".join(f"{key}={format_value(value)}" for key, value in self.params.items())
        return f"{self.name}:{pairs}"

    def __hash__(self) -> int:
        return hash(str(self))


def parse_value(text: str) -> Any:
    """A Python literal where the text is one; a list (tuple) of such values for brackets
    (parentheses) holding bare words, as a shell leaves ``[A,B]``; else the text itself."""
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    if len(text) < 2 or _BRACKETS.get(text[0]) != text[-1] or text[0] == "{":
        return text
    items = split_top_level(text[1:-1])
    trailing_comma = len(items) > 1 and not items[-1].strip()  # as Python allows: (a,)
    items = items[:-1] if trailing_comma else items
    if any(not item.strip() for item in items):
        raise CxrltError(
            f"Empty item in {text!r}: remove the stray comma, or write '' for an empty string."
        )
    values = [parse_value(item) for item in items]
    if text[0] == "[":
        return values
    return tuple(values) if trailing_comma or len(values) > 1 else values[0]


def format_value(value: Any) -> str:
    """The shortest text that :func:`parse_value` reads back as ``value``."""
    if isinstance(value, str):
        bare_ok = value == value.strip() and not set(value) & set(",=[](){}'\"")
        if bare_ok and parse_value(value) == value:
            return value
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ",".join(format_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets and quotes."""
    parts, depth, quote, start = [], [], None, 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _BRACKETS:
            depth.append(_BRACKETS[char])
        elif depth and char == depth[-1]:
            depth.pop()
        elif char == sep and not depth:
            parts.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise CxrltError(f"Unbalanced brackets or quotes in {text!r}: close every [, ( and quote.")
    parts.append(text[start:])
    return parts


def _name_end(token: str) -> int:
    """Index of the ``:`` that starts the parameters, or -1 when the whole token is a name."""
    for i, char in enumerate(token):
        if char == ":" and _KEY.match(token, i + 1):
            return i
    return -1


def _add_param(spec_text: str, params: dict[str, Any], pair: str) -> None:
    key, _, value = pair.partition("=")
    key = key.strip()
    if not key.isidentifier():
        what = "has no parameter name" if not key else f"has {key!r}, which is no parameter name,"
        raise CxrltError(
            f"In {spec_text!r}: {pair.strip()!r} {what} before '=': write key=value with a "
            "key of letters, digits and _ (`cxrlt show KIND NAME` lists the parameters)."
        )
    if key in params:
        raise CxrltError(
            f"In {spec_text!r}: parameter {key!r} is given twice: keep one of the values."
        )
    params[key] = parse_value(value)


def is_parameter(token: str) -> bool:
    """Whether a list token is ``key=value``, continuing the spec before it."""
    return _name_end(token) < 0 and bool(_KEY.match(token))


def parse_specs(text: str) -> list[Spec]:
    """Parse a comma list of specs; a ``key=value`` token belongs to the spec before it."""
    specs: list[tuple[str, dict[str, Any]]] = []
    for token in split_top_level(text):
        token = token.strip()
        if not token:
            raise CxrltError(f"Empty name in {text!r}: remove the stray comma.")
        if is_parameter(token):
            if not specs:
                raise CxrltError(f"{text!r} starts with a parameter: put a name before {token!r}.")
            _add_param(text, specs[-1][1], token)
            continue
        end = _name_end(token)
        name = token if end < 0 else token[:end]
        specs.append((name.strip(), {}))
        if end >= 0:
            _add_param(text, specs[-1][1], token[end + 1 :])
    return [Spec(name, params) for name, params in specs]


def parse_spec(text: str) -> Spec:
    """Parse exactly one spec."""
    specs = parse_specs(text)
    if len(specs) != 1:
        raise CxrltError(
            f"Expected one name in {text!r}, got {len(specs)}: {', '.join(map(str, specs))}. "
            "Give one name with its parameters (name:key=value,key=value)."
        )
    return specs[0]


def format_specs(specs: list[Spec]) -> str:
    """The comma list that :func:`parse_specs` reads back as ``specs``."""
    return ",".join(str(spec) for spec in specs)
