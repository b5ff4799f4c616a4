"""Names with parameters: ``ldam-drw:max_m=0.5,s=30`` and lists ``crt,tta:scales=[0.9,1.1]``.

A ``:`` belongs to the name unless ``key=`` follows it, so timm names such as
``hf-hub:timm/x`` pass through. Values are Python literals, else plain strings.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from cxrlt.errors import CxrltError

_KEY = re.compile(r"\s*([A-Za-z_]\w*)\s*=")
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
    """A Python literal where the text is one, else the text itself."""
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


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
        raise CxrltError(f"In {spec_text!r}: {pair!r} is not a key=value parameter.")
    if key in params:
        raise CxrltError(f"In {spec_text!r}: parameter {key!r} is given twice.")
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
            f"Expected one name in {text!r}, got {len(specs)}: {', '.join(map(str, specs))}."
        )
    return specs[0]


def format_specs(specs: list[Spec]) -> str:
    """The comma list that :func:`parse_specs` reads back as ``specs``."""
    return ",".join(str(spec) for spec in specs)
