"""Metrics benchmark: ``evaluate`` against a scikit-learn loop over classes, same data, same run.

The data is the challenge's scale: 150,000 validation images x 30 classes, prevalences falling
geometrically from 1 in 3 to 1 in 3,000 (the long tail), float32 logits as training writes them.
``evaluate`` computes AP, AUC, F1, ECE and the group means; the scikit-learn loop computes AP,
AUC and F1 only (``average_precision_score``, ``roc_auc_score``, ``f1_score`` per class), so the
ratio, best of ``--repeats`` each, understates the gain. The largest difference between the two
on the shared metrics is recorded too.

    python bench/metrics_speed.py             # full size, figures in bench/results/
    python bench/metrics_speed.py --quick     # small smoke check
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from cxrlt.evaluation.metrics import evaluate


def make_data(n_images: int, n_classes: int, seed: int) -> tuple[np.ndarray, ...]:
    """Long-tailed targets, float32 logits that separate them moderately, and probabilities."""
    rng = np.random.default_rng(seed)
    prevalence = np.geomspace(1 / 3, 1 / 3000, n_classes)
    targets = (rng.random((n_images, n_classes)) < prevalence).astype(np.int8)
    logits = (rng.normal(size=targets.shape) + 2 * targets - 2).astype(np.float32)
    return targets, logits, 1 / (1 + np.exp(-logits))


def sklearn_loop(probs: np.ndarray, targets: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """AP, AUC and F1@0.5 per class with a positive, as a (3, classes) array."""
    values = np.full((3, targets.shape[1]), np.nan)
    for c in np.flatnonzero(targets.sum(axis=0) > 0):
        y = targets[:, c]
        values[:, c] = (
            average_precision_score(y, logits[:, c]),
            roc_auc_score(y, logits[:, c]),
            f1_score(y, probs[:, c] >= 0.5, zero_division=0),
        )
    return values


def best_time(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=150_000)
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--quick", action="store_true", help="3,000 images, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.repeats = 3000, 1
    targets, logits, probs = make_data(args.images, args.classes, args.seed)
    classes = [f"class {i}" for i in range(args.classes)]
    counts = (np.geomspace(1 / 3, 1 / 3000, args.classes) * 128_815).astype(int)
    ours, report = best_time(
        lambda: evaluate(probs, targets, classes, scores=logits, train_counts=counts),
        args.repeats,
    )
    theirs, reference = best_time(lambda: sklearn_loop(probs, targets, logits), args.repeats)
    mine = report.per_class[["AP", "AUC", "F1"]].to_numpy().T
    figures = {
        "images": args.images,
        "classes": args.classes,
        "repeats": args.repeats,
        "evaluate_seconds": round(ours, 4),
        "sklearn_seconds": round(theirs, 4),
        "speed_up": round(theirs / ours, 2),
        "max_abs_difference": float(np.nanmax(np.abs(mine - reference))),
        "machine": f"{platform.machine()}, {platform.python_version()}, numpy {np.__version__}",
    }
    figures["table"] = "\n".join(
        [
            f"{args.images:,} images x {args.classes} classes, best of {args.repeats}; "
            f"{figures['machine']}",
            "",
            "| what | seconds | speed-up |",
            "|---|---|---|",
            f"| scikit-learn loop (AP, AUC, F1) | {theirs:.3f} | 1.00x |",
            f"| cxrlt evaluate (AP, AUC, F1, ECE, groups) | {ours:.3f} | {theirs / ours:.2f}x |",
            "",
            f"Largest difference on AP, AUC, F1: {figures['max_abs_difference']:.1e}",
        ]
    )
    print(figures["table"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics_speed.json").write_text(json.dumps(figures, indent=2) + "\n")
    (args.out / "metrics_speed.md").write_text(figures["table"] + "\n")
    return figures


if __name__ == "__main__":
    main()
