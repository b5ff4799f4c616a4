"""``cxrlt prepare``: decode a data set's images once into the cache that training reads."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from cxrlt.cli.app import app, console, friendly_errors
from cxrlt.cli.options import with_run_options
from cxrlt.errors import CxrltError
from cxrlt.options import DATA_OPTIONS, RunOptions

SHOWN_FAILURES = 5


@app.command()
@friendly_errors
@with_run_options(DATA_OPTIONS)
def prepare(
    given: dict[str, Any],
    workers: Annotated[
        int | None, typer.Option(help="Decoding processes (default: all cores).")
    ] = None,
) -> None:
    """Decode every image once, resized to --size, into the cache that `cxrlt run` reads.

    Safe to stop with Ctrl-C: a rerun continues where it stopped. A rerun also decodes again
    the images whose files changed, and those that failed once they are fixed or readable.
    Colour images are converted to grey and counted; blank ones (a single value) are refused.
    Images that cannot be decoded are listed and the command exits with code 2; the others
    stay cached.
    """
    from cxrlt.data.cache import (
        check_cache_writable,
        check_image_size,
        human_bytes,
        prepare_images,
    )
    from cxrlt.data.images import conversion_notes
    from cxrlt.data.table import LabelledImages
    from cxrlt.io import cache_dir
    from cxrlt.outputs.report import print_data_notes
    from cxrlt.registry import resolve

    options = RunOptions(**given)
    dataset, data, size, letterbox = options.dataset, options.data, options.size, options.letterbox
    check_image_size(size)  # before anything is read or written
    check_cache_writable(cache_dir())
    built: LabelledImages = resolve("datasets", dataset).build(path=data)
    print_data_notes(console, built)
    # Prepare exactly the images a run decodes: rows with table problems (missing files,
    # bad labels) are left out, as `cxrlt run --skip-bad` does; without it a run stops on them.
    bad = sorted({row for problem in built.problems for row in problem.rows})
    if bad:
        console.print(
            f"[yellow]Note:[/yellow] {len(bad)} rows with problems in the table are left out "
            "(`cxrlt run` lists them, and stops unless --skip-bad).",
            highlight=False,
        )
    kept = built.without(bad)
    started = time.monotonic()
    cached = prepare_images(
        kept.paths, size, letterbox=letterbox, workers=workers, progress=True, console=console
    )
    seconds = time.monotonic() - started

    n = len(cached.images)
    disk = sum(f.stat().st_size for f in cached.folder.iterdir() if f.is_file())
    console.print(f"Images:       {n} at {size}x{size} px{' (letterboxed)' if letterbox else ''}")
    console.print(f"Cache folder: {cached.folder}", highlight=False, soft_wrap=True)
    console.print(f"Size on disk: {human_bytes(disk)}")
    if cached.decoded:
        rate = cached.decoded / max(seconds, 1e-9)
        console.print(f"Decoded:      {cached.decoded} images in {seconds:.1f} s ({rate:.0f}/s)")
    else:
        console.print("Decoded:      nothing, the cache was complete and up to date")
    for note in conversion_notes(cached.converted, kept.image_ids):
        console.print(f"[yellow]Note:[/yellow] {note}", highlight=False, soft_wrap=True)
    if cached.failures:
        raise CxrltError(_failure_message(cached.failures, kept.lines, kept.image_ids))


def _failure_message(failures: dict[int, str], lines: Sequence[int], ids: Sequence[str]) -> str:
    """The images that could not be decoded: the cache holds the others, a rerun only these."""
    listed = [
        f"  - CSV line {lines[row]} ({ids[row]}): {message}"
        for row, message in list(failures.items())[:SHOWN_FAILURES]
    ]
    if len(failures) > SHOWN_FAILURES:
        listed.append(f"  - and {len(failures) - SHOWN_FAILURES} more.")
    return "\n".join(
        [
            f"{len(failures)} of {len(ids)} images could not be decoded (the others are cached):",
            *listed,
            "Fix or replace these files and run `cxrlt prepare` again (it decodes only them), "
            "or remove their rows, or pass --skip-bad to `cxrlt run` to leave them out.",
        ]
    )
