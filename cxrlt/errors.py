"""The exceptions users see as a message alone, and the words for the OS errors they meet."""

from __future__ import annotations

import errno
import os


class CxrltError(Exception):
    """A problem the user can fix (bad name, bad parameter, bad input file).

    The CLI prints the message alone and exits with code 2; Python callers get the exception.
    """

    exit_code = 2


class CxrltInterrupted(KeyboardInterrupt):
    """Ctrl-C, with advice on how to go on (e.g. the exact ``--resume`` command).

    A ``KeyboardInterrupt``, not a :class:`CxrltError`, so that code which notes a failure and
    goes on (a sweep's cells) still stops; the CLI prints the message and exits with code 130.
    """

    exit_code = 130


_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM)


def os_error_message(error: OSError) -> str | None:
    """The one-paragraph message for a file-system error, naming the path and the fix; None for
    an error without a path or a known cause (a bug to show with its traceback)."""
    path = error.filename
    where = f" while writing {path}" if path else ""
    if error.errno in _FULL:
        return (
            f"The disk is full ({error.strerror}){where}: free some space, write the output "
            "elsewhere (--out), or point the image cache at a disk with room (CXRLT_CACHE_DIR)."
        )
    if path is None or error.errno is None:
        return None
    if error.errno == errno.EROFS:
        return f"{path} is on a read-only file system: write elsewhere (e.g. another --out)."
    if error.errno in _DENIED:
        folder = os.path.dirname(os.path.abspath(path))
        return (
            f"{path} may not be used ({error.strerror}): give an input you may read or an "
            f"output you may write (e.g. another --out), or change the permissions of {path} "
            f"or of {folder}."
        )
    if error.errno == errno.EISDIR:
        return f"{path} is a folder, where a file is expected: give a file's path."
    if error.errno == errno.EEXIST:
        return f"{path} is a file, where a folder is expected: check the path."
    if error.errno == errno.ENOTDIR:
        return f"A part of {path} is a file, where a folder is expected: check the path."
    return f"{path}: {error.strerror}. Check the path."
