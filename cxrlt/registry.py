"""Registries of named entries, one per hook kind, filled by plugins through ``register``.

Entries are small frozen records with a lazy ``"module:attr"`` target, so listing never
imports torch. Resolving a spec checks its parameters against the target's signature before
any work starts, and every mistake becomes a :class:`CxrltError` that says how to fix it.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import os
import typing
from collections import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType, UnionType
from typing import Any

import pluggy

from cxrlt.errors import CxrltError
from cxrlt.plugins import BLOCK_ENV, failed_plugins, plugin_manager, plugin_version
from cxrlt.spec import Spec, parse_spec


@dataclass(frozen=True)
class Kind:
    """A hook point: its plural name, singular word, the arguments cxrlt supplies itself
    (``context``), and the parameters a caller may set over the spec (``overridable``)."""

    name: str
    singular: str
    context: tuple[str, ...] = ()
    # Unlike context, these stay the user's too (``resnet18:pretrained=True``); a caller's
    # value (``--pretrained``) reaches only targets that declare the parameter.
    overridable: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("losses", "loss", ("class_counts", "n_items")),
        Kind("samplers", "sampler", ("labels",)),
        Kind("backbones", "backbone", ("in_chans",), overridable=("pretrained",)),
        Kind("heads", "head", ("in_features", "n_classes")),
        Kind("post", "post-training step"),
        Kind("calibrators", "calibrator"),
        Kind("thresholds", "threshold policy"),
        Kind("datasets", "dataset", ("path",)),
        Kind("commands", "command"),
        Kind("recipes", "recipe"),
        Kind("loggers", "logger"),
        Kind("image_text_models", "image-text model"),
        Kind("executors", "executor"),
    )
}
_KIND_WORDS = {word: kind for kind in KINDS.values() for word in (kind.name, kind.singular)}
_KIND_WORDS.update(
    {"loss": KINDS["losses"], "step": KINDS["post"], "threshold": KINDS["thresholds"]}
)


def kind_named(word: str) -> Kind:
    """The kind for ``loss``, ``losses``, ``post``, ... (singular or plural)."""
    kind = _KIND_WORDS.get(word.lower().strip())
    if kind is None:
        typed = word.lower().strip()
        close = difflib.get_close_matches(typed, _KIND_WORDS, n=3)  # ties: the longest prefix
        close.sort(key=lambda known: -len(os.path.commonprefix([typed, known])))
        hint = f"Did you mean {_KIND_WORDS[close[0]].name!r}? " if close else ""
        raise CxrltError(f"Unknown kind {word!r}. {hint}Kinds: {', '.join(KINDS)}.")
    return kind


@dataclass(frozen=True)
class Param:
    """One user-settable parameter of an entry."""

    name: str
    default: Any  # inspect.Parameter.empty when required
    annotation: Any

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @property
    def type_name(self) -> str:
        return _type_name(self.annotation)

    def describe(self) -> str:
        text = f"{self.name}: {self.type_name}" if self.type_name else self.name
        return text if self.required else f"{text} = {self.default!r}"


def _load(target: str) -> Any:
    """The object a ``"package.module:attr"`` string names."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class SubmissionFormat:
    """The file a challenge's scorer expects for a data set's test images: the id column, then
    the classes in order. A data set entry declares its formats (``submissions=``), so
    ``class_list`` may be a lazy ``"module:attr"`` string and declaring one stays import-cheap."""

    name: str
    id_column: str
    class_list: tuple[str, ...] | str
    notes: str = ""

    @cached_property
    def classes(self) -> tuple[str, ...]:
        if not isinstance(self.class_list, str):
            return tuple(self.class_list)
        try:
            return tuple(_load(self.class_list))
        except (ImportError, AttributeError, TypeError) as error:
            raise CxrltError(
                f"The submission format {self.name!r} takes its classes from "
                f"{self.class_list!r}, which cannot be loaded ({error})."
            ) from error

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.id_column, *self.classes)


@dataclass(frozen=True)
class Entry:
    """A named choice at a hook point, pointing lazily at its implementation."""

    kind: str
    name: str
    target: Any  # "package.module:attr" or the object itself
    plugin: str
    summary: str = ""
    aliases: tuple[str, ...] = ()
    bound: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # The publication the entry implements, and where its defaults (keyed by parameter, or
    # "formula" for the loss's form) differ from it and why: `cxrlt show` prints both.
    paper: str = ""
    deviations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Losses only: the head spec the loss is designed for, the run's head unless --head says.
    head: str | None = None
    # Data sets only: the challenge files its test images can be written as, and whether a
    # backbone starts from random weights on it unless told otherwise (an offline first run).
    submissions: tuple[SubmissionFormat, ...] = ()
    trains_from_scratch: bool = False

    def load(self) -> Callable[..., Any]:
        """Import and return the target."""
        if not isinstance(self.target, str):
            return self.target
        try:
            obj = _load(self.target)
        except (ImportError, AttributeError) as error:
            raise CxrltError(
                f"The {KINDS[self.kind].singular} {self.name!r} from plugin {self.plugin!r} "
                f"points at {self.target!r}, which cannot be loaded ({error}). Reinstall the "
                f"plugin or block it with {BLOCK_ENV}={self.plugin}."
            ) from error
        return obj

    @property
    def target_path(self) -> str:
        if isinstance(self.target, str):
            return self.target
        return (
            f"{getattr(self.target, '__module__', '?')}:{getattr(self.target, '__qualname__', '?')}"
        )

    def params(self) -> dict[str, Param]:
        """User-settable parameters: the target's signature less context and bound arguments."""
        target = self.load()
        signature = inspect.signature(target)
        hints = _type_hints(target)
        hidden = set(KINDS[self.kind].context) | set(self.bound)
        return {
            p.name: Param(p.name, p.default, hints.get(p.name, p.annotation))
            for p in signature.parameters.values()
            if p.name not in hidden and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def accepts_any_keyword(self) -> bool:
        parameters = inspect.signature(self.load()).parameters.values()
        return any(p.kind is p.VAR_KEYWORD for p in parameters)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "aliases": list(self.aliases),
            "summary": self.summary,
            "plugin": self.plugin,
            "target": self.target_path,
            "paper": self.paper,
            "deviations": dict(self.deviations),
            "head": self.head,
            "submissions": [fmt.name for fmt in self.submissions],
            "trains_from_scratch": self.trains_from_scratch,
        }


@dataclass(frozen=True)
class NameSource:
    """Names a plugin answers for beyond those it registers (a model library's, say).

    ``claim(name)`` returns the ``register`` keywords (``target`` included) of a name the
    source owns, None otherwise; ``names()`` gives candidates to suggest for a misspelt name
    (none when absent); ``note`` is the line ``cxrlt list`` prints about the source. Both
    functions may be lazy ``"module:attr"`` strings, so registering a source imports nothing.
    """

    kind: str
    plugin: str
    claim: Callable[[str], Mapping[str, Any] | None] | str
    names: Callable[[], Iterable[str]] | str | None
    note: str

    def _call(self, function: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Any:
        try:
            return (_load(function) if isinstance(function, str) else function)(*args, **kwargs)
        except CxrltError:
            raise
        except Exception as error:
            raise CxrltError(
                f"The {KINDS[self.kind].singular} name source of plugin {self.plugin!r} failed "
                f"({type(error).__name__}: {error}). Fix it, or block the plugin with "
                f"{BLOCK_ENV}={self.plugin}."
            ) from error

    def entry(self, name: str) -> Entry | None:
        """The entry for ``name`` if this source claims it."""
        fields = self._call(self.claim, name)
        if fields is None:
            return None
        claimed: list[Entry] = []
        self._call(_Register(KINDS[self.kind], self.plugin, claimed, []), name, **fields)
        return claimed[0]

    def candidates(self) -> list[str]:
        """The names to suggest for a misspelt one."""
        return [] if self.names is None else list(self._call(self.names))


@dataclass(frozen=True)
class Resolved:
    """A spec checked against its entry, with every parameter's value (defaults filled in)."""

    entry: Entry
    params: dict[str, Any]

    @property
    def spec(self) -> Spec:
        return Spec(self.entry.name, self.params)

    def build(self, **context: Any) -> Any:
        """Call the target with the spec's parameters and the context arguments it accepts."""
        target = self.entry.load()
        if not self.entry.accepts_any_keyword():
            accepted = inspect.signature(target).parameters
            context = {key: value for key, value in context.items() if key in accepted}
        try:
            return target(**self.entry.bound, **context, **self.params)
        except ValueError as error:  # a parameter value the target refuses
            singular = KINDS[self.entry.kind].singular
            raise CxrltError(f"The {singular} '{self.spec}' cannot be built: {error}.") from None

    def to_dict(self) -> dict[str, Any]:
        """What a run directory records to repeat the choice exactly."""
        return {
            "spec": str(self.spec),
            "name": self.entry.name,
            "params": self.params,
            "plugin": self.entry.plugin,
            "version": plugin_version(self.entry.plugin),
            "target": self.entry.target_path,
        }


def _type_hints(target: Any) -> dict[str, Any]:
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - unresolvable annotations only lose type checking
        return {}


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _fits(value: Any, annotation: Any) -> bool:
    """Whether a parsed value suits a parameter's annotation (unknown annotations accept all)."""
    if annotation in (inspect.Parameter.empty, Any):
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, UnionType):
        return any(_fits(value, arm) for arm in args)
    if origin is typing.Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is Path:
        return isinstance(value, str | Path)
    if origin in (list, tuple, abc.Sequence):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_fits, value, args))
        element = args[0] if args else Any
        return all(_fits(item, element) for item in value)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


class Registry:
    """The entries of one kind, by name and alias, and the name sources that answer for
    names no entry has."""

    def __init__(
        self, kind: Kind, entries: list[Entry], sources: Sequence[NameSource] = ()
    ) -> None:
        self.kind = kind
        self.entries = entries
        self.sources = tuple(sources)
        self._by_name: dict[str, Entry] = {}
        for entry in entries:
            for name in (entry.name, *entry.aliases):
                other = self._by_name.get(name)
                if other is not None:
                    first, second = sorted((other.plugin, entry.plugin))
                    raise CxrltError(
                        f"Two plugins claim the {kind.singular} name {name!r}: {first!r} and "
                        f"{second!r}. Uninstall one, or block one with {BLOCK_ENV}=<plugin>."
                    )
                self._by_name[name] = entry

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def match(self, pattern: str = "*") -> list[Entry]:
        """Entries whose name or an alias matches a shell-style wildcard pattern."""
        return [
            entry
            for entry in self.entries
            if any(fnmatch.fnmatchcase(n, pattern) for n in (entry.name, *entry.aliases))
        ]

    def get(self, name: str) -> Entry:
        """The entry for a name or alias; an unknown name lists the closest ones."""
        entry = self._by_name.get(name)
        for source in self.sources:
            if entry is not None:
                break
            entry = source.entry(name)
        if entry is None:
            raise CxrltError(self._unknown_message(name))
        return entry

    def _unknown_message(self, name: str) -> str:
        kind = self.kind
        candidates = list(self._by_name)
        for source in self.sources:
            candidates += [n for n in source.candidates() if n not in self._by_name]
        close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
        hint = f" Closest: {', '.join(close)}." if close else ""
        known = ", ".join(e.name for e in self.entries) or "none installed"
        message = f"Unknown {kind.singular} {name!r}.{hint} Known: {known}."
        message += "".join(f" {source.note}" for source in self.sources)
        message += f" See `cxrlt list {kind.name}`."
        broken = failed_plugins()
        if broken:
            names = ", ".join(f"{p.name} ({p.error})" for p in broken)
            message += f" Note: these plugins failed to load and may provide it: {names}."
        return message

    def resolve(self, spec: Resolved | Spec | str, **overrides: Any) -> Resolved:
        """Check a spec's parameters against its entry and fill in the defaults.

        ``spec`` is a name with parameters, a parsed :class:`Spec`, or a :class:`Resolved`
        of this kind (checked again only when an override is given). ``overrides`` (the kind's
        ``overridable`` parameters, e.g. a backbone's ``pretrained``) replace the spec's value
        where the target declares the parameter and are dropped where it does not; None leaves
        the spec as it is.
        """
        unknown = sorted(set(overrides) - set(self.kind.overridable))
        if unknown:
            raise TypeError(
                f"{self.kind.name} take no override {', '.join(unknown)}; "
                f"overridable: {', '.join(self.kind.overridable) or 'none'}"
            )
        if isinstance(spec, Resolved):
            if spec.entry.kind != self.kind.name:
                raise CxrltError(
                    f"'{spec.spec}' is a {KINDS[spec.entry.kind].singular}, not a "
                    f"{self.kind.singular}: give a {self.kind.singular} name "
                    f"(see `cxrlt list {self.kind.name}`)."
                )
            if all(value is None for value in overrides.values()):
                return spec
            spec = spec.spec
        spec = parse_spec(spec) if isinstance(spec, str) else spec
        entry = self.get(spec.name)
        params = entry.params()
        applied = {
            key: value
            for key, value in overrides.items()
            if value is not None and (key in params or entry.accepts_any_keyword())
        }
        spec = Spec(spec.name, {**spec.params, **applied})
        what = f"{self.kind.singular} {entry.name!r}"
        accepted = ", ".join(p.describe() for p in params.values()) or "none"
        for key, value in spec.params.items():
            param = params.get(key)
            if param is None and not entry.accepts_any_keyword():
                close = difflib.get_close_matches(key, list(params), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise CxrltError(
                    f"The {what} has no parameter {key!r}.{hint} Accepted: {accepted}."
                )
            if param is not None and not _fits(value, param.annotation):
                raise CxrltError(
                    f"Parameter {key!r} of the {what} must be {_type_name(param.annotation)}, "
                    f"got {value!r} ({type(value).__name__}). Accepted: {accepted}."
                )
        missing = [p.name for p in params.values() if p.required and p.name not in spec.params]
        if missing:
            raise CxrltError(
                f"The {what} needs {', '.join(map(repr, missing))}: write "
                f"{entry.name}:{missing[0]}=... Accepted: {accepted}."
            )
        values = {name: p.default for name, p in params.items() if not p.required}
        values.update(spec.params)
        return Resolved(entry, values)


def registry(kind: str) -> Registry:
    """The registry of one kind (singular or plural word), built on first use."""
    return _collect(kind_named(kind).name, plugin_manager())


# Keyed by the plugin manager as well, so a new one (``plugins.reset()``) gets new registries.
@lru_cache(maxsize=len(KINDS))
def _collect(kind_name: str, pm: pluggy.PluginManager) -> Registry:
    """Every plugin's ``register_<kind>`` entries, each call told which plugin is speaking."""
    kind = KINDS[kind_name]
    entries: list[Entry] = []
    sources: list[NameSource] = []
    for impl in getattr(pm.hook, f"register_{kind.name}").get_hookimpls():
        register = _Register(kind, impl.plugin_name, entries, sources)
        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except CxrltError:
            raise
        except Exception as error:
            raise CxrltError(
                f"Plugin {impl.plugin_name!r} failed while registering {kind.name}: "
                f"{type(error).__name__}: {error}. Fix it, or block it with "
                f"{BLOCK_ENV}={impl.plugin_name}."
            ) from error
    return Registry(kind, entries, sources)


class _Register:
    """The ``register`` a ``register_<kind>`` hook receives, speaking for one plugin:
    ``register(name, target, ...)`` adds an entry and ``register.source(...)`` a name source
    (see :mod:`cxrlt.hookspecs`)."""

    def __init__(
        self, kind: Kind, plugin: str, entries: list[Entry], sources: list[NameSource]
    ) -> None:
        self.kind, self.plugin, self.entries, self.sources = kind, plugin, entries, sources

    def _refuse(self, name: str, problem: str) -> CxrltError:
        return CxrltError(
            f"Plugin {self.plugin!r} registered {self.kind.singular} {name!r} with {problem}"
        )

    def __call__(
        self,
        name: str,
        target: Any,
        *,
        summary: str = "",
        aliases: tuple[str, ...] | list[str] = (),
        bound: Mapping[str, Any] | None = None,
        paper: str = "",
        deviations: Mapping[str, str] | None = None,
        head: str | None = None,
        submissions: Sequence[SubmissionFormat] = (),
        trains_from_scratch: bool = False,
    ) -> None:
        kind, plugin = self.kind, self.plugin
        if not isinstance(name, str) or not name or set(name) & set(",= "):
            raise CxrltError(
                f"Plugin {plugin!r} registered an invalid {kind.singular} name {name!r}."
            )
        if isinstance(target, str) and ":" not in target:
            raise self._refuse(name, f"target {target!r}: write it as 'package.module:attribute'.")
        deviations = dict(deviations or {})
        if not all(isinstance(v, str) and v for v in (*deviations, *deviations.values())):
            raise self._refuse(
                name,
                f"deviations {deviations!r}: give "
                "{'parameter': 'where and why it differs from the paper'}.",
            )
        if deviations and not paper:
            raise self._refuse(
                name,
                "deviations but no paper: say which paper they differ from with "
                "paper='Author et al., venue year'.",
            )
        if head is not None and kind.name != "losses":
            raise self._refuse(name, f"head={head!r}: only a loss declares the head it expects.")
        submissions = tuple(submissions)
        self._check_dataset_declarations(name, submissions, trains_from_scratch)
        self.entries.append(
            Entry(
                kind.name,
                name,
                target,
                plugin,
                summary,
                tuple(aliases),
                MappingProxyType(dict(bound or {})),
                paper=paper,
                deviations=MappingProxyType(deviations),
                head=head,
                submissions=submissions,
                trains_from_scratch=trains_from_scratch,
            )
        )

    def _check_dataset_declarations(
        self, name: str, submissions: tuple[Any, ...], trains_from_scratch: Any
    ) -> None:
        if (submissions or trains_from_scratch) and self.kind.name != "datasets":
            raise self._refuse(
                name,
                "submissions or trains_from_scratch: only a data set declares them.",
            )
        if not isinstance(trains_from_scratch, bool):
            raise self._refuse(
                name, f"trains_from_scratch={trains_from_scratch!r}: give True or False."
            )
        wrong = [fmt for fmt in submissions if not isinstance(fmt, SubmissionFormat)]
        if wrong:
            raise self._refuse(
                name,
                f"submissions containing {wrong[0]!r}: give "
                "cxrlt.SubmissionFormat(name, id_column, class_list) records.",
            )
        names = [fmt.name for fmt in submissions]
        if len(set(names)) < len(names):
            raise self._refuse(name, f"submission formats of repeated names: {names}.")

    def source(
        self,
        claim: Callable[[str], Mapping[str, Any] | None] | str,
        *,
        names: Callable[[], Iterable[str]] | str | None = None,
        note: str,
    ) -> None:
        """Answer for names no entry has: ``claim(name)`` gives the ``register`` keywords of
        a name the plugin owns (``target`` included) or None; ``names()`` candidates to
        suggest for a misspelt name; ``note`` one line for ``cxrlt list``. ``claim`` and
        ``names`` are functions or lazy ``"module:attr"`` strings."""
        functions = (claim,) if names is None else (claim, names)
        lazy_or_callable = all(callable(f) or (isinstance(f, str) and ":" in f) for f in functions)
        if not lazy_or_callable or not (isinstance(note, str) and note):
            raise CxrltError(
                f"Plugin {self.plugin!r} registered a {self.kind.singular} name source "
                "wrongly: give register.source(claim, names=..., note='one line for users'), "
                "claim and names as functions or 'package.module:function' strings."
            )
        self.sources.append(NameSource(self.kind.name, self.plugin, claim, names, note))


def resolve(kind: str, spec: Resolved | Spec | str, **overrides: Any) -> Resolved:
    """Shortcut: ``resolve("losses", "ldam-drw:s=30")``; see :meth:`Registry.resolve`."""
    return registry(kind).resolve(spec, **overrides)
