"""Head / medium / tail class groups by training frequency, and metric means per group.

Long-tail methods trade head accuracy for tail accuracy, so the overall mean alone hides what
they do. CXR-LT has no official split; two conventions are common, both offered here:

- ``thirds``: classes sorted by training positives, most first (ties keep class order), cut
  into three groups of equal size. When the class count is not a multiple of three the
  remainder goes to the groups nearest the head: 7 classes give 3 / 2 / 2, 8 give 3 / 3 / 2.
- ``bounds``: fixed counts ``(low, high)``: tail ``n < low``, medium ``low <= n <= high``,
  head ``n > high``. The literature's ``(100, 1000)`` suits the full challenge data; scale it
  with the size of the training set for smaller data.

Under both rules a class with no training positive goes to a fourth group, ``none``: the model
never saw one, so it is neither head nor tail. Such classes are listed by name in the
description and left out of the head / medium / tail means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxrlt.errors import CxrltError

GROUPS = ("head", "medium", "tail")
NO_POSITIVES = "none"  # the group of classes without a training positive
METHODS = ("thirds", "bounds")


@dataclass(frozen=True)
class ClassGroups:
    """Each class's group, and the bounds that put it there (to print beside the numbers)."""

    group: dict[str, str]  # class -> "head" | "medium" | "tail" | "none", in class order
    description: str

    def members(self, name: str) -> list[str]:
        """The classes of one group, in class order."""
        known = (*GROUPS, NO_POSITIVES)
        if name not in known:
            raise CxrltError(f"Unknown group {name!r}: use one of {', '.join(known)}.")
        return [c for c, g in self.group.items() if g == name]

    @property
    def without_positives(self) -> list[str]:
        """The classes with no training positive, outside head / medium / tail."""
        return self.members(NO_POSITIVES)


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


def _classes(n: int) -> str:
    return f"{n} {'class' if n == 1 else 'classes'}"


def _describe(labels: np.ndarray, ranges: dict[str, str], classes: Sequence[str]) -> str:
    parts = [f"{name} {ranges[name]} ({_classes(int((labels == name).sum()))})" for name in GROUPS]
    text = "; ".join(parts) + " training positives"
    untrained = [c for c, label in zip(classes, labels, strict=True) if label == NO_POSITIVES]
    if untrained:
        text += (
            f"; {NO_POSITIVES}: {_classes(len(untrained))} without training positives, left out "
            f"of the group means ({', '.join(untrained)})"
        )
    return text


def _span(values: np.ndarray) -> str:
    if not len(values):
        return "—"  # no class in the group
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
    labels = np.full(len(counts), NO_POSITIVES, dtype=object)
    seen = counts > 0
    if method == "thirds":
        order = np.argsort(-counts, kind="stable")[: int(seen.sum())]
        for name, part in zip(GROUPS, np.array_split(order, 3), strict=True):
            labels[part] = name
        ranges = {name: _span(counts[labels == name]) for name in GROUPS}
        description = "equal thirds by training frequency: "
    elif method == "bounds":
        low, high = _check_bounds(bounds)
        labels[seen] = "medium"
        labels[seen & (counts < low)] = "tail"
        labels[seen & (counts > high)] = "head"
        ranges = {"head": f"> {high}", "medium": f"{low}–{high}", "tail": f"< {low}"}
        description = "count bounds: "
    else:
        raise CxrltError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    description += _describe(labels, ranges, classes)
    return ClassGroups(dict(zip(classes, labels.tolist(), strict=True)), description)


def group_means(
    per_class: pd.DataFrame, groups: ClassGroups, column: str = "AP"
) -> dict[str, float]:
    """Macro mean of ``column`` within head, medium and tail; NaN classes are left out, as
    overall, and so are the classes without training positives (group ``none``).

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
