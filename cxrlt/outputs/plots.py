"""PNG plots of a run's validation results: AP by training count, PR curves, reliability.

Figures are drawn on matplotlib's Agg canvas without pyplot, so making them changes no global
backend or state (a notebook keeps its own) and needs no display. Import this module only where
plots are made: matplotlib costs a noticeable share of a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cxrlt.errors import CxrltError
from cxrlt.evaluation.groups import GROUPS, ClassGroups
from cxrlt.evaluation.metrics import (
    N_BINS,
    calibration_bins,
    expected_calibration_error,
    precision_recall,
)
from cxrlt.io import atomic_path

COLOURS = {"head": "tab:blue", "medium": "tab:orange", "tail": "tab:red"}


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    return path


def curve_classes(
    per_class: pd.DataFrame, train_counts: Sequence[int], chosen: Sequence[str] | None, n: int = 3
) -> list[str]:
    """The classes to draw PR curves for: ``chosen``, else the ``n`` rarest and ``n`` most
    frequent in training among those with validation positives (a curve needs one)."""
    scored = per_class.index[per_class["n_pos"] > 0]
    if chosen:
        unknown = [c for c in chosen if c not in per_class.index]
        if unknown:
            raise CxrltError(
                f"Unknown class {', '.join(map(repr, unknown))}: the run's classes are "
                f"{', '.join(per_class.index)}."
            )
        unscored = [c for c in chosen if c not in scored]
        if unscored:
            raise CxrltError(
                f"No validation positives, so no precision-recall curve: {', '.join(unscored)}."
            )
        return list(dict.fromkeys(chosen))
    counts = pd.Series(np.asarray(train_counts), index=per_class.index)[scored]
    order = counts.sort_values(kind="stable").index.tolist()
    return list(dict.fromkeys(order[:n] + order[-n:]))


def ap_by_train_count(
    per_class: pd.DataFrame,
    train_counts: Sequence[int],
    path: Path,
    groups: ClassGroups | None = None,
) -> Path:
    """Each scored class's AP against its training positives (log axis), coloured by group."""
    group = [groups.group[c] for c in per_class.index] if groups else "all"
    frame = per_class.assign(train=np.asarray(train_counts), group=group)
    frame = frame[frame["AP"].notna() & (frame["train"] > 0)]
    figure = Figure(figsize=(8, 5))
    ax = figure.add_subplot()
    for name in GROUPS if groups else ("all",):
        part = frame[frame["group"] == name]
        ax.scatter(part["train"], part["AP"], color=COLOURS.get(name), label=name)
    for cls, row in frame.iterrows():
        ax.annotate(cls, (row.train, row.AP), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="training positives", ylabel="validation AP")
    ax.set_title("AP per class against training frequency")
    if groups:
        ax.legend(title="group", loc="upper left")
    return _save(figure, path)


def precision_recall_curves(
    targets: np.ndarray,
    scores: np.ndarray,
    per_class: pd.DataFrame,
    chosen: Sequence[str],
    train_counts: Sequence[int],
    path: Path,
) -> Path:
    """Precision against recall for the ``chosen`` classes, in steps as AP sums them."""
    figure = Figure(figsize=(7, 5.5))
    ax = figure.add_subplot()
    for cls in chosen:
        c = per_class.index.get_loc(cls)
        precision, recall = precision_recall(targets[:, c], scores[:, c])
        ax.step(
            np.r_[0.0, recall],
            np.r_[precision[0], precision],
            where="pre",
            label=f"{cls} (train {train_counts[c]}, AP {per_class['AP'].iloc[c]:.3f})",
        )
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    ax.set_title("Precision-recall curves (ranked by logits)")
    ax.legend(fontsize=7, loc="upper right")
    return _save(figure, path)


def reliability_diagram(
    probabilities: Mapping[str, np.ndarray], targets: np.ndarray, path: Path
) -> Path:
    """Observed frequency against mean probability in 15 equal-width bins, every image-class
    pair pooled, for each kind of probabilities (raw, calibrated); bin sizes below, log scale."""
    figure = Figure(figsize=(6, 7))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    edges = np.linspace(0, 1, N_BINS + 1)
    for kind, probs in probabilities.items():
        count, prob_sum, target_sum = (b.sum(axis=0) for b in calibration_bins(probs, targets))
        filled = count > 0
        ece = expected_calibration_error(probs, targets)
        mean_prob, frequency = prob_sum[filled] / count[filled], target_sum[filled] / count[filled]
        top.plot(mean_prob, frequency, marker="o", label=f"{kind} (ECE {ece:.3f})")
        bottom.stairs(count, edges, label=kind)
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed frequency")
    top.set_title(f"Reliability ({N_BINS} bins, all image-class pairs)")
    top.legend(loc="upper left")
    bottom.set(yscale="log", xlabel="predicted probability", ylabel="pairs per bin")
    return _save(figure, path)


def map_by_loss_and_arch(summary: pd.DataFrame, path: Path) -> Path:
    """A sweep's mAP, one panel per post-training alternative: bars by loss, one per backbone,
    with the spread over seeds as error bars."""
    posts = list(dict.fromkeys(summary["post"]))
    losses = list(dict.fromkeys(summary["loss"]))
    archs = list(dict.fromkeys(summary["arch"]))
    figure = Figure(figsize=(1.2 + 1.1 * len(losses) * len(posts), 3.6))
    axes = figure.subplots(1, len(posts), sharey=True, squeeze=False)[0]
    width = 0.8 / len(archs)
    for ax, post in zip(axes, posts, strict=True):
        rows = summary[summary["post"] == post].set_index(["loss", "arch"])
        for i, arch in enumerate(archs):
            keys = [(loss, arch) for loss in losses]
            mean = [rows["mAP_mean"].get(key, np.nan) for key in keys]
            spread = [rows["mAP_std"].get(key, np.nan) for key in keys]
            positions = np.arange(len(losses)) + (i - (len(archs) - 1) / 2) * width
            ax.bar(positions, mean, width, yerr=np.nan_to_num(spread), capsize=3, label=arch)
        ax.set_xticks(np.arange(len(losses)), losses, rotation=20, ha="right")
        ax.set_title(f"post: {post}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("validation mAP (mean ± sd over seeds)")
    axes[-1].legend(title="backbone", fontsize="small")
    return _save(figure, path)
