"""The Typer application object and the error handling every command shares.

Importing the CLI must stay cheap (no torch, fastai or timm): ``cxrlt --help`` and the
listing commands answer in a fraction of a second.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from cxrlt.errors import CxrltError

app = typer.Typer(
    name="cxrlt",
    help="Long-tailed, multi-label chest X-ray classification: train, evaluate, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show a :class:`CxrltError` as its message alone and exit with code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CxrltError as error:
            err_console.print(f"[bold red]Error:[/bold red] {error}", highlight=False)
            raise typer.Exit(error.exit_code) from None

    return wrapper
