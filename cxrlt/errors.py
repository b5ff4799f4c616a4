"""The one exception type users see: a clear message, no traceback, exit code 2."""

from __future__ import annotations


class CxrltError(Exception):
    """A problem the user can fix (bad name, bad parameter, bad input file).

    The CLI prints the message alone and exits with code 2; Python callers get the exception.
    """

    exit_code = 2
