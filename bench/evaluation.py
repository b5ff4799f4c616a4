"""Evaluation benchmark: the metrics and test-time augmentation, each against a plain baseline
run in the same invocation.

1. Metrics. ``evaluate`` against a scikit-learn loop over classes on the challenge's scale:
   150,000 validation images x 30 classes, prevalences falling geometrically from 1 in 3 to
   1 in 3,000 (the long tail), float32 logits as training writes them. ``evaluate`` computes AP,
   AUC, F1, ECE and the group means; the scikit-learn loop AP, AUC and F1 only
   (``average_precision_score``, ``roc_auc_score``, ``f1_score`` per class), so the ratio
   understates the gain. The largest difference on the shared metrics is recorded too.
2. TTA prediction. A model rebuilt with cxrlt's ``tta`` post step, as ``cxrlt predict`` does
   (``cxrlt.post.rebuild``), predicting through ``cxrlt.prediction.predict_logits``, against a
   hand-written loop with the same model, images, views (the image, its mirror, each scale
   resized about the centre then cropped or black-padded) and merge (the logit of the mean
   probability). The images are uint8 in a memory-mapped file, as the cache holds them; the
   largest logit difference between the two is recorded.

Each figure is the best of ``--repeats`` timings, the two arms alternating (and their order
swapped every repeat) so that other work on the machine disturbs both alike.

    python bench/evaluation.py            # full sizes (~3 min on 2 cores), bench/results/
    python bench/evaluation.py --quick    # tiny sizes: a smoke check, not figures
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from harness import RESULTS, Goal, best_time, write_results
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from cxrlt.evaluation.metrics import evaluate

# Goals. evaluate() was measured 5.3x faster than the scikit-learn loop when it was written
# (docs/benchmarks.md); 3x leaves room for a noisy machine while still catching a regression
# to per-call scikit-learn speed. The two TTA paths run the same forward passes, so cxrlt's
# may cost at most 5% more (noise) and must give the same logits up to float32 rounding.
METRICS_SPEED_UP = 3.0
METRICS_AGREEMENT = 1e-9
TTA_RATIO = 1.05
TTA_AGREEMENT = 1e-4


# ------------------------------------------------------------------------------------- metrics


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


def alternate(
    arms: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, float], dict[str, object]]:
    """Best time and last result of each arm, the arms taking turns (order swapped each repeat)."""
    best = {name: float("inf") for name in arms}
    results: dict[str, object] = {}
    names = list(arms)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            seconds, results[name] = best_time(arms[name], 1)
            best[name] = min(best[name], seconds)
    return best, results


def bench_metrics(n_images: int, n_classes: int, repeats: int, seed: int) -> dict:
    targets, logits, probs = make_data(n_images, n_classes, seed)
    classes = [f"class {i}" for i in range(n_classes)]
    counts = (np.geomspace(1 / 3, 1 / 3000, n_classes) * 128_815).astype(int)
    seconds, results = alternate(
        {
            "cxrlt": lambda: evaluate(probs, targets, classes, scores=logits, train_counts=counts),
            "sklearn": lambda: sklearn_loop(probs, targets, logits),
        },
        repeats,
    )
    mine = results["cxrlt"].per_class[["AP", "AUC", "F1"]].to_numpy().T
    return {
        "images": n_images,
        "classes": n_classes,
        "repeats": repeats,
        "evaluate_seconds": round(seconds["cxrlt"], 4),
        "sklearn_seconds": round(seconds["sklearn"], 4),
        "speed_up": round(seconds["sklearn"] / seconds["cxrlt"], 3),
        "max_abs_difference": float(np.nanmax(np.abs(mine - results["sklearn"]))),
    }


# ----------------------------------------------------------------------------------------- TTA


def tta_spec(flip: bool, scales: list[float], merge: str) -> str:
    return f"tta:flip={flip},scales=[{','.join(f'{s:g}' for s in scales)}],merge={merge}"


def plain_tta_logits(
    model: torch.nn.Module,
    images: np.ndarray,
    bs: int,
    *,
    flip: bool,
    scales: list[float],
    merge: str,
) -> np.ndarray:
    """The views and the merge written out by hand, one forward pass per view."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), bs):
            x = torch.tensor(images[start : start + bs]).unsqueeze(1).float() / 255
            height, width = x.shape[-2:]
            views = [x, x.flip(-1)] if flip else [x]
            for scale in scales:
                h, w = max(1, round(height * scale)), max(1, round(width * scale))
                resized = F.interpolate(
                    x, size=(h, w), mode="bilinear", align_corners=False, antialias=scale < 1
                )
                top, left = (height - h) // 2, (width - w) // 2  # negative: crop
                bottom, right = height - h - top, width - w - left
                views.append(F.pad(resized, (left, right, top, bottom)))
            logits = torch.stack([model(view) for view in views])
            if merge == "logit":
                merged = logits.mean(0)
            else:  # the logit of the mean probability
                p = torch.sigmoid(logits.double()).mean(0)
                merged = (torch.log(p) - torch.log1p(-p)).float()
            out.append(merged)
    return torch.cat(out).numpy()


def bench_tta(args: argparse.Namespace) -> dict:
    from cxrlt.model.build import build_model
    from cxrlt.post import rebuild
    from cxrlt.prediction import predict_logits
    from cxrlt.registry import resolve

    torch.manual_seed(args.seed)
    classes = [f"class {i}" for i in range(args.classes)]
    model = build_model(
        resolve("backbones", f"{args.arch}:pretrained=False"),
        resolve("heads", "linear"),
        len(classes),
    ).eval()
    spec = tta_spec(args.flip, args.scales, args.merge)
    wrapped = rebuild(model, [spec], classes)  # what `cxrlt predict` rebuilds for a tta run
    views = 1 + args.flip + len(args.scales)
    with tempfile.TemporaryDirectory(prefix="cxrlt-bench-tta-") as folder:
        shape = (args.tta_images, args.size, args.size)
        pixels = np.random.default_rng(args.seed).integers(0, 256, shape, dtype=np.uint8)
        path = Path(folder) / "images.u8"
        pixels.tofile(path)
        images = np.memmap(path, dtype=np.uint8, mode="r", shape=shape)  # as the cache
        device = torch.device("cpu")

        def ours() -> np.ndarray:
            return predict_logits(wrapped, images, args.bs, device)

        def plain() -> np.ndarray:
            return plain_tta_logits(
                model, images, args.bs, flip=args.flip, scales=args.scales, merge=args.merge
            )

        warm = images[: min(len(images), args.bs)]  # first calls allocate and pick kernels
        predict_logits(wrapped, warm, args.bs, device)
        plain_tta_logits(model, warm, args.bs, flip=args.flip, scales=args.scales, merge=args.merge)
        seconds, results = alternate({"cxrlt": ours, "plain": plain}, args.tta_repeats)
        difference = float(np.max(np.abs(results["cxrlt"] - results["plain"])))
    return {
        "images": args.tta_images,
        "size": args.size,
        "arch": args.arch,
        "post": spec,
        "views": views,
        "bs": args.bs,
        "repeats": args.tta_repeats,
        "threads": torch.get_num_threads(),
        "cxrlt_seconds": round(seconds["cxrlt"], 4),
        "plain_seconds": round(seconds["plain"], 4),
        "cxrlt_images_per_s": round(args.tta_images / seconds["cxrlt"], 2),
        "plain_images_per_s": round(args.tta_images / seconds["plain"], 2),
        "ratio": round(seconds["cxrlt"] / seconds["plain"], 4),
        "max_abs_logit_difference": difference,
    }


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=150_000, help="metrics: images")
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="metrics: timings per arm")
    parser.add_argument("--tta-images", type=int, default=256)
    parser.add_argument("--size", type=int, default=128, help="TTA: image side")
    parser.add_argument("--arch", default="resnet18", help="TTA: backbone (no weights)")
    parser.add_argument("--bs", type=int, default=64, help="TTA: prediction batch size")
    parser.add_argument("--tta-repeats", type=int, default=3, help="TTA: timings per arm")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--scales", type=float, nargs="*", default=[0.9, 1.1])
    parser.add_argument("--merge", choices=("logit", "prob"), default="prob")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.repeats = 3000, 1
        args.tta_images, args.size, args.bs, args.tta_repeats = 16, 32, 8, 1
    return args


def table(metrics: dict, tta: dict, quick: bool) -> str:
    m, t = metrics, tta
    return "\n".join(
        [
            *(["Quick sizes: a smoke check, not figures.", ""] if quick else []),
            f"Metrics: {m['images']:,} images x {m['classes']} classes, best of {m['repeats']}",
            "",
            "| what | seconds | speed-up |",
            "|---|---|---|",
            f"| scikit-learn loop (AP, AUC, F1) | {m['sklearn_seconds']:.3f} | 1.00x |",
            f"| cxrlt evaluate (AP, AUC, F1, ECE, groups) | {m['evaluate_seconds']:.3f} "
            f"| {m['speed_up']:.2f}x |",
            "",
            f"Largest difference on AP, AUC, F1: {m['max_abs_difference']:.1e}",
            "",
            f"TTA prediction: {t['images']:,} images of {t['size']} px, {t['arch']} (random "
            f"weights), `{t['post']}` ({t['views']} views), batch {t['bs']}, "
            f"{t['threads']} threads, best of {t['repeats']}",
            "",
            "| what | seconds | images/s | time ratio |",
            "|---|---|---|---|",
            f"| plain loop | {t['plain_seconds']:.3f} | {t['plain_images_per_s']:.1f} | 1.00 |",
            f"| cxrlt (rebuild + predict_logits) | {t['cxrlt_seconds']:.3f} "
            f"| {t['cxrlt_images_per_s']:.1f} | {t['ratio']:.3f} |",
            "",
            f"Largest logit difference: {t['max_abs_logit_difference']:.1e}",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    metrics = bench_metrics(args.images, args.classes, args.repeats, args.seed)
    tta = bench_tta(args)
    goals = [
        Goal("sklearn / cxrlt metrics time", ">=", METRICS_SPEED_UP, metrics["speed_up"]),
        Goal(
            "max AP, AUC, F1 difference vs sklearn",
            "<=",
            METRICS_AGREEMENT,
            metrics["max_abs_difference"],
        ),
        Goal("cxrlt / plain TTA time", "<=", TTA_RATIO, tta["ratio"]),
        Goal("max TTA logit difference", "<=", TTA_AGREEMENT, tta["max_abs_logit_difference"]),
    ]
    figures = {"quick": args.quick, "metrics": metrics, "tta": tta}
    return write_results(args.out, "evaluation", figures, table(metrics, tta, args.quick), goals)


if __name__ == "__main__":
    main()
