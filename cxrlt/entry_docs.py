"""What ``cxrlt show`` says about an entry, read from its source without importing it.

Importing a loss or a post-training step to read its signature imports torch (seconds); parsing
the module's source with :mod:`ast` takes milliseconds. The source is located without executing
any package on the way, the target's own docstring and parameters (a class's ``__init__``,
through its base classes when it defines none) are read from the tree, and defaults are Python
literals or module constants. Whatever the static reader cannot be sure of (a decorated target,
a default computed by a call, a name bound conditionally) is read by importing the target
instead, so the answer is the same either way, only slower.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import inspect
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cxrlt.registry import KINDS, Entry, Param

# Statements that bind a name plainly; any other that binds it (an ``if``, a ``try``, ``+=``)
# may bind it only sometimes, or change it: such a name is not read statically.
_PLAIN = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Import,
    ast.ImportFrom,
    ast.Assign,
    ast.AnnAssign,
)
_DEPTH = 20  # imports and base classes followed at most; deeper gives up (a cycle, say)


@dataclass(frozen=True)
class EntryDoc:
    """An entry's own docstring (cleaned; "" for none) and its user-settable parameters."""

    docstring: str
    params: dict[str, Param]


class _Unknown(Exception):
    """The source does not say for sure: read the target by importing it."""


def describe(entry: Entry) -> EntryDoc:
    """The entry's docstring and parameters, statically when its source allows, else loaded."""
    return static_description(entry) or loaded_description(entry)


def static_description(entry: Entry) -> EntryDoc | None:
    """The description read from the target's source; None when the source cannot say for
    sure (the annotations are then their text, not the objects)."""
    try:
        return _read_statically(entry)
    except _Unknown:
        return None


def loaded_description(entry: Entry) -> EntryDoc:
    """The description read from the imported target."""
    return EntryDoc(own_docstring(entry.load()), entry.params())


def own_docstring(target: Any) -> str:
    """The docstring a class or function defines itself, cleaned; "" for none. Never one
    inherited from a base class (it would describe torch's nn.Module, not the entry), nor an
    object's class docstring."""
    if inspect.isclass(target):
        doc = vars(target).get("__doc__")
    else:
        doc = target.__doc__ if inspect.isroutine(target) else None
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _read_statically(entry: Entry) -> EntryDoc:
    if not isinstance(entry.target, str):
        raise _Unknown
    module, _, attr = entry.target.partition(":")
    if not attr or "." in attr:
        raise _Unknown
    definition, where = _definition(module, attr, _DEPTH)
    if isinstance(definition, ast.ClassDef):
        function, function_module = _init_of(definition, where, _DEPTH)
    else:
        function, function_module = definition, where
    hidden = set(KINDS[entry.kind].context) | set(entry.bound)
    params = {} if function is None else _parameters(function, function_module, definition)
    return EntryDoc(
        ast.get_docstring(definition) or "",
        {name: param for name, param in params.items() if name not in hidden},
    )


@cache
def _module_spec(module: str) -> importlib.machinery.ModuleSpec:
    """Where a module's source is, found without executing it or the packages above it
    (``importlib.util.find_spec`` of a submodule would import its parent packages)."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        for depth in range(1, len(parts)):
            if spec is None or spec.submodule_search_locations is None:
                raise _Unknown
            name = ".".join(parts[: depth + 1])
            spec = importlib.machinery.PathFinder.find_spec(name, spec.submodule_search_locations)
    except (ImportError, ValueError):
        raise _Unknown from None
    if spec is None:
        raise _Unknown
    return spec


@cache
def _module_tree(module: str) -> ast.Module:
    spec = _module_spec(module)
    # A frozen standard module (abc, in Python 3.11) still names its source file.
    source = (
        getattr(spec.loader_state, "filename", None) if spec.origin == "frozen" else spec.origin
    )
    if not (source or "").endswith(".py"):
        raise _Unknown
    try:
        return ast.parse(Path(source).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        raise _Unknown from None


def _binding(module: str, name: str) -> ast.stmt:
    """The last top-level statement of ``module`` that binds ``name``; unknown when another
    kind of statement binds it too (see ``_PLAIN``)."""
    found: ast.stmt | None = None
    for statement in _module_tree(module).body:
        if name in _bound_names(statement):
            if not isinstance(statement, _PLAIN):
                raise _Unknown
            found = statement
    if found is None:
        raise _Unknown
    return found


# Expressions whose names stay inside them.
_OWN_SCOPE = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _bound_names(statement: ast.stmt) -> set[str]:
    """The module-level names a statement binds (inside functions, classes, lambdas and
    comprehensions aside)."""
    names: set[str] = set()
    pending: list[ast.AST] = [statement]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            continue
        if isinstance(node, _OWN_SCOPE):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        pending.extend(ast.iter_child_nodes(node))
    return names


def _imported_module(statement: ast.ImportFrom, module: str) -> str:
    """The absolute name of the module a ``from ... import`` in ``module`` reads from."""
    if not statement.level:
        return statement.module or ""
    is_package = _module_spec(module).submodule_search_locations is not None
    package = module if is_package else module.rpartition(".")[0]
    base = package.rsplit(".", statement.level - 1)[0] if statement.level > 1 else package
    return f"{base}.{statement.module}" if statement.module else base


def _alias(statement: ast.Import | ast.ImportFrom, name: str) -> ast.alias:
    """The one alias of an import that binds ``name``."""
    found = [a for a in statement.names if (a.asname or a.name.split(".")[0]) == name]
    if len(found) != 1:
        raise _Unknown
    return found[0]


def _definition(module: str, name: str, depth: int) -> tuple[ast.stmt, str]:
    """The ``def`` or ``class`` that ``name`` is in ``module``, following ``from`` imports,
    with the module that defines it."""
    if depth <= 0:
        raise _Unknown
    statement = _binding(module, name)
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        if statement.decorator_list:  # a decorator may change the signature
            raise _Unknown
        return statement, module
    if isinstance(statement, ast.ImportFrom):
        source = _imported_module(statement, module)
        return _definition(source, _alias(statement, name).name, depth - 1)
    raise _Unknown


def _base_definition(base: ast.expr, module: str, depth: int) -> tuple[ast.stmt, str]:
    """The class a base-class expression (``Name`` or ``module.Name``) of ``module`` names."""
    if isinstance(base, ast.Name):
        return _definition(module, base.id, depth)
    if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
        statement = _binding(module, base.value.id)
        if isinstance(statement, ast.ImportFrom):
            imported = (
                f"{_imported_module(statement, module)}.{_alias(statement, base.value.id).name}"
            )
            return _definition(imported, base.attr, depth)
        if isinstance(statement, ast.Import):
            alias = _alias(statement, base.value.id)
            return _definition(alias.name if alias.asname else base.value.id, base.attr, depth)
    raise _Unknown


def _init_of(cls: ast.ClassDef, module: str, depth: int) -> tuple[ast.FunctionDef | None, str]:
    """The ``__init__`` a class's instances are made with, searched through its bases depth
    first; None when no class on the way defines one (``object``'s: no parameters)."""
    if depth <= 0 or cls.decorator_list:
        raise _Unknown
    own = {s.name: s for s in cls.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)}
    if "__new__" in own or "__signature__" in own:
        raise _Unknown
    if "__init__" in own:
        return own["__init__"], module
    for base in cls.bases:
        definition, where = _base_definition(base, module, depth - 1)
        if not isinstance(definition, ast.ClassDef):
            raise _Unknown
        init, init_module = _init_of(definition, where, depth - 1)
        if init is not None:
            return init, init_module
    return None, module


def _parameters(
    function: ast.FunctionDef | ast.AsyncFunctionDef, module: str, definition: ast.stmt
) -> dict[str, Param]:
    """Named parameters with defaults and annotation text, as ``inspect.signature`` lists them
    (a class's ``self`` left out; ``*args`` and ``**kwargs`` are never settable by name)."""
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults))
    pairs = list(zip(positional, [*defaults, *arguments.defaults], strict=True))
    if isinstance(definition, ast.ClassDef) and pairs:
        pairs = pairs[1:]
    pairs += zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
    return {
        arg.arg: Param(
            arg.arg,
            inspect.Parameter.empty if default is None else _value(default, module, _DEPTH),
            _annotation_text(arg.annotation, module),
        )
        for arg, default in pairs
    }


def _value(node: ast.expr, module: str, depth: int) -> Any:
    """A default: a literal, or a module constant assigned a literal (followed through
    imports); anything computed is unknown."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if not isinstance(node, ast.Name) or depth <= 0:
        raise _Unknown
    statement = _binding(module, node.id)
    if isinstance(statement, ast.Assign | ast.AnnAssign) and _assigns_only(statement, node.id):
        return _value(statement.value, module, depth - 1)
    if isinstance(statement, ast.ImportFrom):
        name = ast.Name(_alias(statement, node.id).name, ast.Load())
        return _value(name, _imported_module(statement, module), depth - 1)
    raise _Unknown


def _assigns_only(statement: ast.Assign | ast.AnnAssign, name: str) -> bool:
    """Whether the statement is ``name = value`` (or ``name: type = value``), nothing else."""
    targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
    only = len(targets) == 1 and isinstance(targets[0], ast.Name) and targets[0].id == name
    return only and statement.value is not None


def _annotation_text(annotation: ast.expr | None, module: str) -> Any:
    """An annotation as written (a quoted one without its quotes), with the module's type
    aliases (``SplitBy = Literal[...]``) spelt out; empty for none."""
    if annotation is None:
        return inspect.Parameter.empty
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value
    return ast.unparse(_AliasesSpeltOut(module).visit(annotation))


class _AliasesSpeltOut(ast.NodeTransformer):
    """Replaces a name the module assigns a subscripted type (``X = Literal["a", "b"]``)."""

    def __init__(self, module: str) -> None:
        self.module = module

    def visit_Name(self, node: ast.Name) -> ast.expr:
        try:
            statement = _binding(self.module, node.id)
        except _Unknown:
            return node
        if isinstance(statement, ast.Assign | ast.AnnAssign) and _assigns_only(statement, node.id):
            if isinstance(statement.value, ast.Subscript):
                return statement.value
        return node
