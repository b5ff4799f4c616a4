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
    """Yield a temporary path beside ``path``; rename it over ``path`` when the block succeeds.

    The file is synced before the rename (a crash leaves the old file or the new, whole) and
    gets the permissions a plain ``open`` would give, not the temporary file's owner-only ones.
    A file-system error names ``path`` (a full disk raised while writing names no file), and
    leaves the previous file as it was and no temporary file behind.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        _sync(tmp)
        os.chmod(tmp, _PLAIN_MODE)
        os.replace(tmp, path)
    except OSError as error:
        if error.errno is not None and error.filename in (None, tmp):
            error.filename, error.filename2 = str(path), None
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _sync(file: str) -> None:
    fd = os.open(file, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_umask() -> int:
    umask = os.umask(0o022)  # reading it means setting it: done once, at import, not in threads
    os.umask(umask)
    return umask


# What ``open(path, "w")`` gives a new file: read-write for all, less the umask.
_PLAIN_MODE = 0o666 & ~_read_umask()


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
    except OSError as error:
        raise CxrltError(f"{path} cannot be read ({error.strerror}): check the path.") from None
    except json.JSONDecodeError as error:
        raise CxrltError(
            f"{path} cannot be read as JSON ({error}): it is not as cxrlt wrote it. Restore the "
            "file, or run again the command that wrote it."
        ) from None


def cache_dir() -> Path:
    """Where cxrlt keeps generated data: ``$CXRLT_CACHE_DIR``, else the XDG cache folder."""
    explicit = os.environ.get("CXRLT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cxrlt"
