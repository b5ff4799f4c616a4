"""Atomic file writes: a temporary name in the same folder, then a rename.

An interrupted run then never leaves a half-written file behind, only the old one or none.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from cxrlt.errors import CxrltError


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_with(path: Path | str, writer: Callable[[IO[str]], Any]) -> Path:
    """Write a text file atomically through ``writer(file)``."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as file:
        writer(file)
    return Path(path)


def write_text(path: Path | str, text: str) -> Path:
    return write_with(path, lambda file: file.write(text))


def write_json(path: Path | str, data: Any) -> Path:
    """JSON with sorted-insertion order kept, indented for people and diffs."""
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path | str) -> Any:
    """A JSON file cxrlt wrote, or a CxrltError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CxrltError(f"{path} cannot be read as JSON ({error}).") from None


def cache_dir() -> Path:
    """Where cxrlt keeps generated data: ``$CXRLT_CACHE_DIR``, else the XDG cache folder."""
    explicit = os.environ.get("CXRLT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cxrlt"
