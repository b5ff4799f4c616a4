"""The ``cxrlt`` command line: built-in commands plus those that plugins register."""

from __future__ import annotations

from cxrlt.cli import (  # noqa: F401 - importing registers the commands
    catalog,
    ensemble,
    evaluate,
    explain,
    predict,
    prepare,
    report,
    sweep,
    train,
    zero_shot,
)
from cxrlt.cli.app import app, err_console, friendly_errors
from cxrlt.errors import CxrltError

__all__ = ["app", "main"]


def add_plugin_commands() -> None:
    """Add the commands that plugins register; a broken one is skipped with a warning."""
    from cxrlt.registry import registry

    try:
        entries = registry("commands").entries
    except CxrltError as error:
        err_console.print(f"[yellow]Warning:[/yellow] plugin commands skipped: {error}")
        return
    taken = {command.name for command in app.registered_commands}
    for entry in entries:
        if entry.name in taken:
            continue
        try:
            app.command(name=entry.name, help=entry.summary)(friendly_errors(entry.load()))
        except CxrltError as error:
            err_console.print(f"[yellow]Warning:[/yellow] {error}")


def main() -> None:
    """Console-script entry point."""
    add_plugin_commands()
    app(prog_name="cxrlt")
