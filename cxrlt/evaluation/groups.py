"""Head / medium / tail class groups by training frequency, and metric means per group.

Long-tail methods trade head accuracy for tail accuracy, so the overall mean alone hides what
they do. CXR-LT has no official split; two conventions are common, both offered here:

- ``thirds``: classes sorted by training positives, most first (ties keep class order), cut
  into three groups of equal size. When the class count is not a multiple of three the
  remainder goes to the groups nearest the head: 7 classes give 3 / 2 / 2, 8 give 3 / 3 / 2.
- ``bounds``: fixed counts ``(low, high)``: tail ``n < low``, medium ``low <= n <= high``,
  head ``n > high``. The literature's ``(100, 1000)`` suits the full challenge data; scale it
  with the size of the training set for smaller data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxrlt.errors import CxrltError

GROUPS = ("head", "medium", "tail")
METHODS = ("thirds", "bounds")


@dataclass(frozen=True)
class ClassGroups:
    """Each class's group, and the bounds that put it there (to print beside the numbers)."""

    group: dict[str, str]  # class -> "head" | "medium" | "tail", in class order
    description: str

    def members(self, name: str) -> list[str]:
        """The classes of one group, in class order."""
        if name not in GROUPS:
            raise CxrltError(f"Unknown group {name!r}: use one of {', '.join(GROUPS)}.")
        return [c for c, g in self.group.items() if g == name]


def _check_bounds(bounds: tuple[int, int]) -> tuple[int, int]:
    try:
        low, high = bounds
        ok = all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in bounds)
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= low <= high:
        raise CxrltError(
            f"bounds must be two whole numbers (low, high) with 0 <= low <= high, got {bounds!r}."
        )
    return int(low), int(high)


def _describe(counts: np.ndarray, labels: np.ndarray, ranges: dict[str, str]) -> str:
    parts = []
    for name in GROUPS:
        n = int((labels == name).sum())
        parts.append(f"{name} {ranges[name]} ({n} {'class' if n == 1 else 'classes'})")
    return "; ".join(parts) + " training positives"


def _span(values: np.ndarray) -> str:
    if not len(values):
        return "none"
    low, high = values.min(), values.max()
    return str(low) if low == high else f"{low}–{high}"


def frequency_groups(
    train_counts: Sequence[int],
    classes: Sequence[str],
    method: str = "thirds",
    bounds: tuple[int, int] = (100, 1000),
) -> ClassGroups:
    """Split ``classes`` into head / medium / tail by their training positives.

    ``bounds`` is used by ``method="bounds"`` only; see the module docstring for both rules.
    """
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or len(counts) != len(classes):
        raise CxrltError(
            f"train_counts must hold one count per class: got {counts.size} counts "
            f"for {len(classes)} classes."
        )
    if len(set(classes)) != len(classes):
        raise CxrltError("classes must be distinct names.")
    if len(counts) and (not np.issubdtype(counts.dtype, np.integer) or counts.min() < 0):
        raise CxrltError("train_counts must be whole numbers, 0 or more.")
    labels = np.empty(len(counts), dtype=object)
    if method == "thirds":
        order = np.argsort(-counts, kind="stable")
        for name, part in zip(GROUPS, np.array_split(order, 3), strict=True):
            labels[part] = name
        ranges = {name: _span(counts[labels == name]) for name in GROUPS}
        description = "equal thirds by training frequency: " + _describe(counts, labels, ranges)
    elif method == "bounds":
        low, high = _check_bounds(bounds)
        labels[:] = "medium"
        labels[counts < low] = "tail"
        labels[counts > high] = "head"
        ranges = {"head": f"> {high}", "medium": f"{low}–{high}", "tail": f"< {low}"}
        description = "count bounds: " + _describe(counts, labels, ranges)
    else:
        raise CxrltError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    return ClassGroups(dict(zip(classes, labels.tolist(), strict=True)), description)


def group_means(
    per_class: pd.DataFrame, groups: ClassGroups, column: str = "AP"
) -> dict[str, float]:
    """Macro mean of ``column`` within each group; NaN classes are left out, as overall.

    A group with no scored class gets NaN.
    """
    if column not in per_class.columns:
        raise CxrltError(
            f"Unknown column {column!r}: the table has {', '.join(map(str, per_class.columns))}."
        )
    missing = [c for c in groups.group if c not in per_class.index]
    if missing:
        raise CxrltError(f"The per-class table lacks grouped classes: {', '.join(missing)}.")
    return {name: float(per_class.loc[groups.members(name), column].mean()) for name in GROUPS}
