"""``cxrlt prepare``: decode a data set's images once into the cache that training reads."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from cxrlt.cli import options
from cxrlt.cli.app import app, console, friendly_errors
from cxrlt.pipeline import RunOptions

_D = RunOptions()

SHOWN_FAILURES = 5


@app.command()
@friendly_errors
def prepare(
    dataset: options.Dataset = _D.dataset,
    data: options.DataFolder = None,
    size: options.Size = _D.size,
    letterbox: options.Letterbox = False,
    workers: Annotated[
        int | None, typer.Option(help="Decoding processes (default: all cores).")
    ] = None,
) -> None:
    """Decode every image once, resized to --size, into the cache that `cxrlt run` reads.

    Safe to stop with Ctrl-C: a rerun continues where it stopped. A rerun also decodes again
    the images whose files changed.
    """
    from cxrlt.data.cache import prepare_images
    from cxrlt.data.table import LabelledImages
    from cxrlt.outputs.report import print_data_notes
    from cxrlt.registry import resolve

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
    console.print(f"Size on disk: {_human_bytes(disk)}")
    if cached.decoded:
        rate = cached.decoded / max(seconds, 1e-9)
        console.print(f"Decoded:      {cached.decoded} images in {seconds:.1f} s ({rate:.0f}/s)")
    else:
        console.print("Decoded:      nothing, the cache was complete and up to date")
    if cached.failures:
        lines, ids = kept.lines, kept.image_ids
        console.print(
            f"[bold red]{len(cached.failures)} images could not be decoded[/bold red] "
            "(their slots are blank; `cxrlt run` stops on them unless --skip-bad):",
            highlight=False,
        )
        for row, message in list(cached.failures.items())[:SHOWN_FAILURES]:
            console.print(
                f"  row {row}, CSV line {lines[row]} ({ids[row]}): {message}",
                highlight=False,
                soft_wrap=True,
            )
        if len(cached.failures) > SHOWN_FAILURES:
            console.print(f"  and {len(cached.failures) - SHOWN_FAILURES} more.")


def _human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
