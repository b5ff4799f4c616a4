"""``cxrlt run``: train and evaluate in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cxrlt.cli.app import app, friendly_errors
from cxrlt.cli.options import with_run_options
from cxrlt.cli.output import Json, Quiet, command_console, command_stdout, print_json
from cxrlt.errors import CxrltError
from cxrlt.options import RUN, RUN_OPTIONS, RunOptions, flag, read_config_file, read_recipe
from cxrlt.workflows.saved import from_run_options, resume_options

Config = Annotated[
    Path | None,
    typer.Option(
        help="TOML or JSON file of run options, named as here ('valid_frac' or 'valid-frac'); "
        "options on the command line override it. A run's config.json repeats that run.",
        rich_help_panel=RUN,
    ),
]
RecipeName = Annotated[
    str | None,
    typer.Option(
        help="A named bundle of run options (see `cxrlt list recipes`); --config and options "
        "on the command line override it.",
        rich_help_panel=RUN,
    ),
]
# What --from-run takes besides the trained run's own options.
_FROM_RUN_CHANGES = ("post", "out", "overwrite", "device", "log")


@app.command()
@friendly_errors
@with_run_options([field.name for field in RUN_OPTIONS])
def run(
    given: dict[str, Any],
    config: Config = None,
    recipe: RecipeName = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the interrupted or failed run in this folder, with its own options "
            "(a corrected --post may be given: training already done is not repeated).",
            rich_help_panel=RUN,
        ),
    ] = None,
    json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Train on a data set (the embedded synthetic one by default) and evaluate on validation."""
    from cxrlt.workflows.run import run as run_pipeline

    options = run_options(given, config, resume, recipe)
    with command_stdout(json=json, quiet=quiet):
        run_dir, report = run_pipeline(
            options, command_console(json=json, quiet=quiet), resume=resume is not None
        )
    if json and report is not None:  # None: a process other than the first under torchrun
        print_json({"run": str(run_dir.path), "metrics": run_dir.read_metrics()})


def run_options(
    given: dict[str, Any], config: Path | None, resume: Path | None, recipe: str | None
) -> RunOptions:
    """The options of the run the command line asks for: ``given`` over the ``config`` file
    over the ``recipe`` over the defaults; with ``resume`` or ``--from-run``, mostly those of
    an earlier run."""
    if resume is not None:
        _refuse_others(
            given,
            config,
            recipe,
            ("post",),
            "--resume continues a run with the options it started with (only --post may change)",
        )
        return resume_options(resume, **given)
    if "from_run" in given:
        _refuse_others(
            given,
            config,
            recipe,
            ("from_run", *_FROM_RUN_CHANGES),
            "--from-run takes the trained run's own options",
        )
        defaults = RunOptions()
        changes = {name: given.get(name, getattr(defaults, name)) for name in _FROM_RUN_CHANGES}
        return from_run_options(given["from_run"], **changes)
    recipe_options = read_recipe(recipe).options if recipe else {}
    return RunOptions(**{**recipe_options, **(read_config_file(config) if config else {}), **given})


def _refuse_others(
    given: dict[str, Any],
    config: Path | None,
    recipe: str | None,
    accepted: tuple[str, ...],
    reason: str,
) -> None:
    """Refuse the options, other than ``accepted``, that would be silently ignored."""
    refused = [flag(name) for name in given if name not in accepted]
    refused += ["--config"] if config is not None else []
    refused += ["--recipe"] if recipe is not None else []
    if refused:
        raise CxrltError(
            f"{reason}; leave out {', '.join(refused)} (or start a new run with them)."
        )
