"""95% confidence intervals of every metric by a patient bootstrap, and paired differences.

Why patients: the images of one patient share a body and often its findings, so they are not
independent; resampling images would give intervals that are too narrow. Each resample draws
as many patients as the split holds, with replacement (the cluster bootstrap: Davison &
Hinkley, *Bootstrap Methods and their Application*, 1997, section 3.8; Field & Welsh, JRSS B
2007). A patient drawn k times gives each of its images the weight k (the multinomial count),
and every metric is recomputed with those weights: AP, AUC, F1 and ECE per class, the macro
means and the head / medium / tail means, exactly as :func:`cxrlt.evaluation.metrics.evaluate`
computes them for unit weights (an image of weight k counts as k copies of it).

Choices:

- B = 1,000 resamples and percentile intervals: the 2.5th and 97.5th percentiles of the
  resampled values (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13).
- Seed 0 by default. Resample b draws from its own stream (``SeedSequence(seed,
  spawn_key=(b,))``), so the draws do not depend on how the resamples are chunked, and two runs
  scored on the same images with the same patients get the same draws: that pairs them.
- A class without a positive in a resample has no AP, AUC (nor without a negative) or F1 there:
  that resample is left out of the class's own distribution, so a rare class's interval is
  conditional on the class being present. The macro means of every resample average the same
  classes as the point estimate, a missing class counting with its estimate: averaging only
  the classes present would drop hard rare classes from many resamples and push the
  resampled means above the estimate (on a split of a few hundred images, the whole interval
  above it). ECE is defined in every resample.
- Paired difference of two runs (:func:`paired_draws`): d_b = metric_b(other) -
  metric_b(first) on the same draws; its interval is the percentiles of d, and the two-sided
  p-value is 2 min(P(d <= 0), P(d >= 0)) over the resamples, at most 1 and at least 1/B (no
  resample crossing 0 is reported as p < 1/B).

Speed: the ranking of each class never changes across resamples, so every weighted count the
metrics need is a sum of image weights over a fixed set of images. AP and AUC need, for each
tie group that holds a positive, the weight of its positives, of its negatives and of the
negatives between it and the previous such group; F1 the weight of the true positives and of
the errors; ECE the sum of w (y - p) in each of a class's 15 bins. One sparse matrix (sets x
patients, built once) times the patient counts of a chunk of resamples gives all of them, and
the metrics follow from cumulative sums over the positive groups only: AP = sum_n (R_n -
R_{n-1}) P_n, AUC = sum over positive groups of w_pos (W_neg below + W_neg tied / 2) /
(W_pos W_neg), the Mann-Whitney form of the trapezoidal ROC area with ties counted 1/2.
1,000 resamples of 20,000 images x 30 classes take seconds (``bench/bootstrap.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cxrlt.errors import CxrltError
from cxrlt.evaluation.groups import GROUPS, ClassGroups

N_RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
PER_CLASS = ("AP", "AUC", "F1", "ECE")
CHUNK_ELEMENTS = 2**22  # resamples per chunk x sets (or patients): bounds the memory used


def patient_codes(patients: Sequence[str] | np.ndarray) -> tuple[np.ndarray, int]:
    """Each image's patient as a number 0..P-1 (patients in sorted order), and P."""
    unique, codes = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    return codes.ravel(), len(unique)


def draw_counts(n_patients: int, seed: int, resamples: range) -> np.ndarray:
    """How often each patient is drawn in each of ``resamples``: ``(len(resamples),
    n_patients)``, every row the counts of ``n_patients`` draws with replacement."""
    counts = np.empty((len(resamples), n_patients))
    for row, b in enumerate(resamples):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(b,)))
        counts[row] = np.bincount(rng.integers(0, n_patients, n_patients), minlength=n_patients)
    return counts


def _tie_group_sets(target: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, int]:
    """Each image's set for AP and AUC, or -1, and the number of positive tie groups K.

    Tie groups are numbered from the highest score; for the k-th group holding a positive,
    set k holds the images ranked between it and the previous such group (all negatives),
    set K + k its negatives and set 2K + k its positives. Images below the last are in none.
    """
    if not target.any():
        return np.full(len(score), -1), 0
    order = np.argsort(score)[::-1]
    group = np.empty(len(score), np.int64)
    group[order] = np.r_[0, np.cumsum(np.diff(score[order]) != 0)]
    positive_groups = np.unique(group[target == 1])
    k = np.searchsorted(positive_groups, group)
    below = k == len(positive_groups)
    inside = positive_groups[np.minimum(k, len(positive_groups) - 1)] == group
    n_groups = len(positive_groups)
    sets = np.where(inside, (1 + target) * n_groups + k, k)
    return np.where(below, -1, sets), n_groups


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis leaving NaN out; NaN where every value is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice"
        return np.nanmean(values, axis=-1)


@dataclass(frozen=True)
class Resampled:
    """Every metric in every resample: per class ``(resamples, classes)``, means ``(resamples,)``.

    ``seed`` and ``patients`` (each image's patient code) identify the draws: two runs pair
    only when both are the same.
    """

    per_class: dict[str, np.ndarray]
    overall: dict[str, np.ndarray]
    seed: int
    patients: np.ndarray = field(repr=False)

    @property
    def n_resamples(self) -> int:
        return len(self.overall["ECE"])

    @property
    def n_patients(self) -> int:
        return int(self.patients.max()) + 1


class Bootstrap:
    """The weighted metrics of one set of predictions, for any patient weights.

    Built once (one sort per class, one sparse matrix); :meth:`scores` takes patient counts,
    :meth:`resample` draws them. ``decisions`` are the 0/1 predictions F1 counts and ``bins``
    each probability's ECE bin (0 to ``n_bins`` - 1), both as evaluate() makes them.
    """

    def __init__(
        self,
        *,
        targets: np.ndarray,
        scores: np.ndarray,
        decisions: np.ndarray,
        probs: np.ndarray,
        bins: np.ndarray,
        n_bins: int,
        patients: Sequence[str] | np.ndarray,
    ) -> None:
        targets = np.asarray(targets, dtype=np.int64)
        n_images, n_classes = targets.shape
        if len(patients) != n_images:
            raise CxrltError(
                f"patients must name the patient of each of the {n_images} images, "
                f"got {len(patients)}."
            )
        self.codes, self.n_patients = patient_codes(patients)
        self.n_classes, self.n_bins = n_classes, n_bins
        self.images = np.bincount(self.codes, minlength=self.n_patients).astype(float)
        rows, cols, data = [], [], []

        def add(images: np.ndarray, columns: np.ndarray, values: np.ndarray) -> None:
            rows.append(self.codes[images])
            cols.append(columns)
            data.append(values)

        self.ranked: list[slice | None] = []  # each class's AP/AUC sets, None without positives
        start = 0
        for c in range(n_classes):
            sets, k = _tie_group_sets(targets[:, c], scores[:, c])
            self.ranked.append(slice(start, start + 3 * k) if k else None)
            images = np.flatnonzero(sets >= 0)
            add(images, start + sets[images], np.ones(len(images)))
            start += 3 * k
        self.f1_start = start  # 2c: true positives of class c, 2c + 1: its errors
        positive = targets.astype(bool)
        for kind, hits in enumerate((decisions & positive, decisions != positive)):
            images, classes = np.nonzero(hits)
            add(images, start + 2 * classes + kind, np.ones(len(images)))
        self.ece_start = start = start + 2 * n_classes  # c * n_bins + bin: sum of y - p
        images, classes = np.indices(targets.shape).reshape(2, -1)
        add(images, start + classes * n_bins + bins.ravel(), (targets - probs).ravel())
        self.n_sets = start + n_classes * n_bins
        from scipy import sparse  # here: importing it costs 0.4 s, metrics.py imports this

        self.matrix = sparse.csr_matrix(
            (np.concatenate(data), (np.concatenate(cols), np.concatenate(rows))),
            shape=(self.n_sets, self.n_patients),
        )

    def per_class(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """AP, AUC, F1 and ECE per class ``(resamples, classes)`` and the pooled ECE
        ``(resamples,)`` for patient ``counts`` ``(resamples, patients)``."""
        counts = np.ascontiguousarray(np.asarray(counts, dtype=float).T)
        if counts.shape[0] != self.n_patients:
            raise CxrltError(f"counts must hold one column per patient ({self.n_patients}).")
        sums = self.matrix @ counts  # (sets, resamples)
        total = self.images @ counts
        shape = (self.n_classes, counts.shape[1])
        ap, auc, positives = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            for c, rows in enumerate(self.ranked):
                if rows is None:
                    continue
                gap, tied_neg, pos = sums[rows].reshape(3, -1, shape[1])
                tps = np.cumsum(pos, axis=0)
                fps = np.cumsum(np.add(gap, tied_neg, out=gap), axis=0, out=gap)
                positives[c] = n_pos = tps[-1]
                pairs = n_pos * (total - n_pos)
                # recall steps by pos / n_pos; a group of weight 0 adds 0 (its precision 0)
                precision = np.divide(tps, np.maximum(tps + fps, np.finfo(float).tiny))
                ap[c] = np.einsum("kb,kb->b", pos, precision) / n_pos
                below = np.einsum("kb,kb->b", pos, fps) - np.einsum("kb,kb->b", pos, tied_neg) / 2
                auc[c] = 1 - below / pairs
            ap[positives == 0] = np.nan
            auc[(positives == 0) | (positives == total)] = np.nan
            hits = sums[self.f1_start : self.ece_start].reshape(self.n_classes, 2, -1)
            f1 = 2 * hits[:, 0] / (2 * hits[:, 0] + hits[:, 1])
            f1[positives == 0] = np.nan
            ece_bins = sums[self.ece_start :].reshape(self.n_classes, self.n_bins, -1)
        return {
            "AP": ap.T,
            "AUC": auc.T,
            "F1": f1.T,
            "ECE": (np.abs(ece_bins).sum(axis=1) / total).T,
            "ECE pooled": np.abs(ece_bins.sum(axis=0)).sum(axis=0) / (self.n_classes * total),
        }

    def scores(
        self,
        counts: np.ndarray,
        *,
        seed: int = SEED,
        groups: ClassGroups | None = None,
        grouped: Sequence[str] = (),
    ) -> Resampled:
        """The per-class metrics and macro means for patient ``counts``; with ``groups``, the
        head / medium / tail means of the ``grouped`` per-class metrics too."""
        values = self.per_class(counts)
        pooled = values.pop("ECE pooled")
        estimate = self.per_class(np.ones((1, self.n_patients)))
        filled = {  # the point estimate's classes in every resample
            name: np.where(np.isnan(values[name]), estimate[name], values[name])
            for name in ("AP", "AUC", "F1")
        }
        overall = {f"m{name}": _nanmean(filled[name]) for name in filled}
        overall["ECE"] = pooled
        if groups is not None:
            labels = np.array(list(groups.group.values()))
            for name in grouped:
                for group in GROUPS:
                    overall[f"m{name}_{group}"] = _nanmean(filled[name][:, labels == group])
        return Resampled(values, overall, seed, self.codes)

    def resample(
        self,
        n_resamples: int = N_RESAMPLES,
        seed: int = SEED,
        *,
        groups: ClassGroups | None = None,
        grouped: Sequence[str] = (),
    ) -> Resampled:
        """``n_resamples`` patient resamples, in chunks that bound the memory used."""
        if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
            raise CxrltError(f"resamples must be a whole number, got {n_resamples!r}.")
        if n_resamples < 1:
            raise CxrltError(f"resamples must be at least 1, got {n_resamples}.")
        chunk = max(1, CHUNK_ELEMENTS // max(self.n_sets, self.n_patients))
        parts = [
            self.scores(
                draw_counts(self.n_patients, seed, range(start, min(start + chunk, n_resamples))),
                seed=seed,
                groups=groups,
                grouped=grouped,
            )
            for start in range(0, n_resamples, chunk)
        ]
        return Resampled(
            {k: np.concatenate([p.per_class[k] for p in parts]) for k in parts[0].per_class},
            {k: np.concatenate([p.overall[k] for p in parts]) for k in parts[0].overall},
            seed,
            self.codes,
        )


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of the defined (non-NaN) draws along the first axis."""
    tail = 50 * (1 - level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice"
        low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
    return low, high


@dataclass(frozen=True)
class Intervals:
    """Percentile intervals of the overall means and of every per-class metric."""

    overall: dict[str, tuple[float, float]]
    per_class: pd.DataFrame  # index: class; AP_low, AP_high, AUC_low, ... ECE_high
    resampled: Resampled = field(repr=False)
    level: float = LEVEL

    @classmethod
    def of(cls, resampled: Resampled, classes: Sequence[str], level: float = LEVEL) -> Intervals:
        overall = {
            name: tuple(float(v) for v in percentile_interval(draws, level))
            for name, draws in resampled.overall.items()
        }
        columns = {}
        for name in PER_CLASS:
            columns[f"{name}_low"], columns[f"{name}_high"] = percentile_interval(
                resampled.per_class[name], level
            )
        per_class = pd.DataFrame(columns, index=pd.Index(list(classes), name="class"))
        return cls(overall, per_class, resampled, level)

    def describe(self) -> str:
        r = self.resampled
        return (
            f"{self.level:.0%} intervals: percentile bootstrap over patients, "
            f"{r.n_resamples:,} resamples of {r.n_patients:,} patients (seed {r.seed})"
        )

    def record(self) -> dict[str, object]:
        """How the intervals were made, for metrics.json."""
        r = self.resampled
        return {
            "method": "percentile bootstrap, patients resampled with replacement",
            "level": self.level,
            "resamples": r.n_resamples,
            "patients": r.n_patients,
            "seed": r.seed,
        }


def paired_draws(first: Resampled, other: Resampled) -> dict[str, np.ndarray]:
    """``other - first`` in every resample, for each overall mean both have.

    Both must come from the same draws (same patients, seed and number of resamples).
    """
    if (
        first.seed != other.seed
        or first.n_resamples != other.n_resamples
        or not np.array_equal(first.patients, other.patients)
    ):
        raise CxrltError(
            "A paired difference needs both runs resampled on the same images with the same "
            "patients, seed and number of resamples."
        )
    return {name: other.overall[name] - draws for name, draws in first.overall.items()}


def p_value(draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference: 2 min(P(d <= 0), P(d >= 0)), in [1/B, 1]."""
    draws = draws[~np.isnan(draws)]
    if not len(draws):
        return float("nan")
    p = 2 * min(np.mean(draws <= 0), np.mean(draws >= 0))
    return float(min(1.0, max(p, 1 / len(draws))))


@dataclass(frozen=True)
class Difference:
    """A paired difference: its value, interval and p-value over ``n_resamples`` resamples."""

    value: float
    low: float
    high: float
    p_value: float
    n_resamples: int

    @classmethod
    def of(cls, value: float, draws: np.ndarray, level: float = LEVEL) -> Difference:
        low, high = percentile_interval(draws, level)
        defined = int(np.sum(~np.isnan(draws)))
        return cls(float(value), float(low), float(high), p_value(draws), defined)

    def columns(self, metric: str) -> dict[str, float]:
        """Table columns for the difference in ``metric``: value, interval and p-value."""
        return {
            f"{metric}_diff": self.value,
            f"{metric}_diff_low": self.low,
            f"{metric}_diff_high": self.high,
            f"{metric}_p": self.p_value,
        }

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return bool(self.low > 0 or self.high < 0)

    def p_text(self) -> str:
        """The p-value; ``< 1/B`` when no resample crossed 0."""
        if np.isnan(self.p_value):
            return "—"
        floor = 1 / self.n_resamples
        return f"< {floor:.3g}" if self.p_value <= floor else f"{self.p_value:.3f}"

    def interval_text(self) -> str:
        """``+0.012 [-0.004, +0.027]``."""
        if np.isnan(self.value):
            return "—"
        return f"{self.value:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"
