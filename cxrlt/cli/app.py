"""The Typer application object and the error handling every command shares.

Importing the CLI must stay cheap (no torch, fastai or timm): ``cxrlt --help`` and the
listing commands answer in a fraction of a second.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from cxrlt import __version__
from cxrlt.errors import CxrltError, CxrltInterrupted, os_error_message

app = typer.Typer(
    name="cxrlt",
    no_args_is_help=True,
    # --install-completion and --show-completion: the script is generated here, offline.
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    # A docstring's lines join into paragraphs that wrap at the terminal's width.
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
# In a log (stdout no terminal) a message stays on one line, so it can be searched; in a
# terminal rich wraps it at the terminal's width.
console = Console(soft_wrap=not sys.stdout.isatty())
err_console = Console(stderr=True)
_ERROR = ("Error: ", "bold red")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"cxrlt {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """Long-tailed, multi-label chest X-ray classification: train, evaluate, compare.

    `cxrlt run` trains and scores a model; `cxrlt list` and `cxrlt show` describe what can be
    chosen by name. Every command takes -h for its options.
    """


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show a :class:`CxrltError`, or a file-system error with a path (a full disk, a folder
    that is not writable), as its message alone and exit with code 2; Ctrl-C as its advice, or
    "Interrupted.", and exit with code 130. No traceback: the user can fix each of them."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CxrltError as error:
            _stop(Text.assemble(_ERROR, str(error)), error.exit_code)
        except OSError as error:
            message = os_error_message(error)
            if message is None:
                raise
            _stop(Text.assemble(_ERROR, message), CxrltError.exit_code)
        except KeyboardInterrupt as interrupt:
            _stop(Text(str(interrupt) or "Interrupted."), CxrltInterrupted.exit_code)

    return wrapper


def _stop(message: Text, code: int) -> None:
    """Flush what the command printed, then the message, so a log shows them in order. The
    message is text, not markup: a ``[A,B]`` in it is printed as it is."""
    sys.stdout.flush()
    err_console.print(message, highlight=False, soft_wrap=True)
    sys.stderr.flush()
    raise typer.Exit(code) from None
