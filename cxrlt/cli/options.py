"""Command-line options generated from the run options' declaration (:mod:`cxrlt.options`),
so a run option is spelled, typed, defaulted and explained in one place."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import typer

from cxrlt.options import RunOptions, option_type

_FIELDS = RunOptions.__dataclass_fields__


def annotated(name: str, help: str | None = None) -> Any:
    """Run option ``name`` as a Typer parameter type: its type with its help and group."""
    metadata = _FIELDS[name].metadata
    info = typer.Option(help=help or metadata["help"], rich_help_panel=metadata["group"])
    return Annotated[option_type(name), info]


DataFolder = annotated("data")
Device = annotated("device")


def with_run_options(
    names: Sequence[str], *, meaning: Mapping[str, tuple[Any, str]] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one option per run option in ``names``, declared in
    :class:`cxrlt.options.RunOptions`. The command declares its own parameters plus ``given``:
    it receives there the run options given on the command line (a default is not given, so a
    configuration file can supply it). ``meaning`` gives an option another default and help
    where the command reads it differently (a sweep's ``--loss`` lists alternatives)."""
    meaning = meaning or {}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in signature.parameters.values()
            if p.name != "given"
        ]
        generated = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=meaning[name][0] if name in meaning else _FIELDS[name].default,
                annotation=annotated(name, meaning[name][1] if name in meaning else None),
            )
            for name in names
        ]
        context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

        @functools.wraps(command)
        def wrapper(*, ctx: typer.Context, **values: Any) -> Any:
            options = {name: values.pop(name) for name in names}
            given = {
                name: value
                for name, value in options.items()
                if ctx.get_parameter_source(name).name != "DEFAULT"  # typer bundles its click
            }
            return command(given=given, **values)

        parameters = [*own, *generated, context]
        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        del wrapper.__wrapped__  # typer reads this signature, not the command's own
        return wrapper

    return decorate
