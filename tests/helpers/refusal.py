"""The bad-input battery's one assertion: a refused command exits with code 2, shows no
traceback, names the problem and its fix, and leaves no partial output behind.

The CLI cases of ``tests/bad_input/test_bad_input_*.py`` go through :func:`refused`, so they
hold one standard and can be counted (``grep -c`` of the cases collected there);
``test_bad_input.py`` checks the data layer's messages directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from typer.testing import CliRunner, Result

from cxrlt.cli import app


def snapshot(*paths: Path) -> dict[Path, bytes | None]:
    """The bytes of every file under ``paths`` (None for a path that does not exist)."""
    files: dict[Path, bytes | None] = {}
    for path in paths:
        if path.is_dir():
            files.update({f: f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()})
            files.setdefault(path, b"<folder>")
        elif path.exists():
            files[path] = path.read_bytes()
        else:
            files[path] = None
    return files


def flat(text: str) -> str:
    """Output with the console's line wrapping undone, for matching phrases."""
    return " ".join(text.split())


def refused(
    args: Sequence[str],
    *fragments: str,
    untouched: Sequence[Path] = (),
    absent: Sequence[Path] = (),
    code: int = 2,
) -> str:
    """Run ``cxrlt ARGS``; assert it stops with ``code``, no traceback, every fragment of the
    message (the problem and its fix) present, every path in ``untouched`` byte-identical to
    before and every path in ``absent`` not created. Returns the flattened output."""
    before = snapshot(*untouched)
    result: Result = CliRunner().invoke(app, [str(arg) for arg in args])
    output = flat(result.output)
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    for fragment in fragments:
        assert flat(fragment) in output, f"{fragment!r} not in: {output}"
    assert snapshot(*untouched) == before, "a refused command changed files it should not have"
    for path in absent:
        assert not Path(path).exists(), f"a refused command left {path} behind"
    return output
