"""The options of an earlier run, read from its run directory: to continue it (``--resume``) or
to post-train its model again (``--from-run``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cxrlt.options import RunOptions


def saved_options(run_path: Path | str) -> RunOptions:
    """The options a run was started with, read from its config."""
    from cxrlt.errors import CxrltError
    from cxrlt.outputs.run_dir import CONFIG, RunDir

    run_dir = RunDir(run_path, check=False)
    saved = run_dir.read_config().options
    if saved is None:
        raise CxrltError(
            f"{run_dir.file(CONFIG)} was not written by `cxrlt run` (its 'options' are "
            "missing): give the folder of a cxrlt run."
        )
    return saved


def resume_options(run_path: Path | str, **changes: Any) -> RunOptions:
    """The options an interrupted run was started with, to continue it in its own folder;
    ``changes`` (a corrected ``post``) apply to what comes after training."""
    return dataclasses.replace(
        saved_options(run_path), out=Path(run_path), overwrite=False, **changes
    )


def from_run_options(run_path: Path | str, **changes: Any) -> RunOptions:
    """Options that post-train a finished run's model again: its data, split and training
    settings, with ``changes`` (``post``, ``out``, ``overwrite``, ``device``) applied."""
    reset = {"out": None, "overwrite": False, "from_run": str(run_path)}
    return dataclasses.replace(saved_options(run_path), **{**reset, **changes})
