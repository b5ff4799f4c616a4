"""How a command prints: ``--json`` for scripts, ``--quiet`` for logs, the console otherwise."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console

from cxrlt.cli.app import console

Json = Annotated[
    bool,
    typer.Option(
        "--json", help="Print the result as JSON on stdout (messages and progress go to stderr)."
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print no progress or report; errors still show.")
]


def command_console(*, json: bool = False, quiet: bool = False) -> Console:
    """The console a command prints its messages on: none with ``quiet``, stderr with
    ``json`` (stdout then holds the JSON alone), else the shared one on stdout."""
    if quiet:
        return Console(quiet=True)
    return Console(stderr=True, soft_wrap=console.soft_wrap) if json else console


@contextlib.contextmanager
def command_stdout(*, json: bool = False, quiet: bool = False) -> Iterator[None]:
    """What the command's code prints on stdout (training progress): on stderr with ``json``,
    so stdout holds only the JSON printed after this block; nowhere with ``quiet``."""
    if quiet:
        with open(os.devnull, "w") as nowhere, contextlib.redirect_stdout(nowhere):
            yield
    elif json:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    else:
        yield


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout; paths and other non-JSON values as their text, NaN as null."""
    text = json.dumps(_plain(data), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _plain(data: Any) -> Any:
    """``data`` with numpy values as Python ones, and NaN and infinite floats as None (JSON has
    no NaN)."""
    if hasattr(data, "tolist"):  # a numpy scalar or array
        data = data.tolist()
    if isinstance(data, float):
        return data if data == data and abs(data) != float("inf") else None
    if isinstance(data, dict):
        return {str(key): _plain(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(value) for value in data]
    return data
