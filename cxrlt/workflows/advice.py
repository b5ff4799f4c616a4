"""What a stopped run tells its user: where it stopped and the exact command that goes on."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from cxrlt.errors import CxrltError

if TYPE_CHECKING:
    from cxrlt.options import RunOptions

ERROR_FILE = "error.txt"  # the traceback of an unexpected late failure, for a bug report


def resume_command(out: Path) -> str:
    return f"cxrlt run --resume {shlex.quote(str(out))}"


def interrupted_advice(out: Path, options: RunOptions, *, ours: bool) -> str:
    """Where Ctrl-C stopped the run and the exact command that continues it; ``ours``: the
    folder holds this run (not yet the one ``--overwrite`` would have replaced)."""
    from cxrlt.outputs.run_dir import RunDir

    if not ours:
        return (
            "Interrupted before training started; nothing was written to the run folder (the "
            "image cache keeps the images decoded so far). Run the same command again."
        )
    if options.from_run:
        return (
            f"Interrupted while post-training the model of {options.from_run} (unchanged). "
            f"Continue with: {resume_command(out)}"
        )
    epochs = RunDir(out, check=False).logged_epochs()
    return (
        f"Interrupted after {epochs} of {options.epochs} epochs; the run so far is kept in "
        f"{out}. Continue it with: {resume_command(out)}"
    )


def late_failure_advice(error: Exception, out: Path, options: RunOptions, *, trained: bool) -> str:
    """A failure after training, with how to go on without training again. An unexpected
    error (a bug, not bad input) keeps its traceback in the run folder."""
    import traceback

    from cxrlt.errors import os_error_message
    from cxrlt.io import write_text

    if isinstance(error, CxrltError):
        cause = str(error)
    elif isinstance(error, OSError) and (text := os_error_message(error)):
        cause = text
    else:
        trace = out / ERROR_FILE
        write_text(trace, "".join(traceback.format_exception(error)))
        cause = f"{type(error).__name__}: {error} (the traceback is in {trace})."
    if not trained:
        return (
            f"{cause} The base run {options.from_run} is unchanged: fix the cause, then continue "
            f"with {resume_command(out)}, or run the command again with --overwrite."
        )
    return (
        f"{cause} Training had finished: its weights are kept in {out} (marked trained). Fix "
        f"the cause, then post-train and evaluate without training again: "
        f"{resume_command(out)} [--post STEPS], or "
        f"cxrlt run --from-run {shlex.quote(str(out))} --post STEPS --out NEW_FOLDER."
    )
