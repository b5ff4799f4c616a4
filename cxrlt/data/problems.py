"""Bad rows, found all at once and reported together: stop with a summary, or skip them.

Nothing is dropped silently: a stop lists every kind of problem with its count and first rows,
a skip writes the skipped rows to the run directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxrlt.errors import CxrltError

SHOWN = 5  # rows quoted per problem
SKIP_HINT = "--skip-bad"


@dataclass(frozen=True)
class Problem:
    """One kind of problem, the data rows (0-based) that have it, and what would fix it."""

    what: str
    rows: tuple[int, ...]  # positions in the table as it is now
    fix: str
    details: tuple[str, ...] = ()  # per row, when there is more to say than the row itself


def find_rows(what: str, mask: np.ndarray, fix: str) -> list[Problem]:
    """A problem for the rows where ``mask`` holds, or none."""
    rows = tuple(int(i) for i in np.flatnonzero(mask))
    return [Problem(what, rows, fix)] if rows else []


def describe(problem: Problem, ids: Sequence[str], lines: Sequence[int]) -> str:
    quoted = []
    for k, row in enumerate(problem.rows[:SHOWN]):
        detail = f": {problem.details[k]}" if problem.details else ""
        quoted.append(f"line {lines[row]} ({ids[row]}{detail})")
    more = f", and {len(problem.rows) - SHOWN} more" if len(problem.rows) > SHOWN else ""
    count = f"{len(problem.rows)} row{'s' if len(problem.rows) != 1 else ''}"
    return f"{problem.what}: {count} — {', '.join(quoted)}{more}. {problem.fix}"


def stop_message(
    source: str, problems: Sequence[Problem], ids: Sequence[str], lines: Sequence[int]
) -> str:
    bad = {row for problem in problems for row in problem.rows}
    text = [f"{source}: {len(bad)} of {len(ids)} rows have problems; nothing was trained."]
    text += [f"  - {describe(problem, ids, lines)}" for problem in problems]
    text.append(
        f"Fix them, or pass {SKIP_HINT} to leave these rows out (they are then listed in the "
        "run directory's skipped.csv)."
    )
    return "\n".join(text)


def skipped_table(
    problems: Iterable[Problem], ids: Sequence[str], lines: Sequence[int]
) -> pd.DataFrame:
    """One line per skipped row and problem: what the run directory's ``skipped.csv`` holds."""
    records = [
        {"ImageID": ids[row], "line": lines[row], "problem": problem.what}
        for problem in problems
        for row in problem.rows
    ]
    return pd.DataFrame(records, columns=["ImageID", "line", "problem"])


def check(
    source: str,
    problems: Sequence[Problem],
    ids: Sequence[str],
    lines: Sequence[int],
    *,
    skip: bool,
) -> set[int]:
    """The rows to leave out; raises with the summary unless ``skip``."""
    if problems and not skip:
        raise CxrltError(stop_message(source, problems, ids, lines))
    return {row for problem in problems for row in problem.rows}
