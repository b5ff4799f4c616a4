"""Per-class Grad-CAM explanations of a finished run: where in an image its model found a class.

The model is the run's own, rebuilt as prediction rebuilds it (:func:`cxrlt.prediction.load_run`),
and the images are decoded as prediction decodes them, so an explanation belongs to the very
probability the run reports. Grad-CAM (the ``grad-cam`` package) weighs one layer's feature maps
by the gradient of one class's logit. The layer is chosen per backbone, with no list of
architectures (see :func:`target_layer`):

1. the module a backbone names in its ``explain_layer`` attribute (how a plugin backbone
   declares it: the name of one of its submodules, e.g. ``"features.denseblock4"``, or the
   module itself);
2. else the last stage that timm's ``feature_info`` lists; for token models (ViTs, which have
   ``num_prefix_tokens``) the stage before it, whose patch tokens every output depends on (a
   class-token head sees the last block's patch tokens only through the class token); tokens
   (B, N, C) are reshaped to maps (B, C, H, W) without their class and register tokens;
3. else, for a backbone without tokens, its last 2-D convolution (a token model's would be
   its patch embedding, which explains nothing: it must declare its layer).

Test-time augmentation is left out of the explained model: Grad-CAM explains one view.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.io import atomic_path, write_with
from cxrlt.outputs.run_dir import RunDir, check_output_file
from cxrlt.outputs.run_schema import RunConfig
from cxrlt.prediction import (
    ImageSource,
    TrainedRun,
    complete_run,
    decode_into_cache,
    find_images,
    load_run,
    unreadable_images,
)

EXPLAIN_LAYER = "explain_layer"  # a backbone's attribute naming the submodule to explain
# Beside the overlays: image, class, probability, evidence, file. ``evidence`` is False where
# the map is zero everywhere: no region of the layer raised the class's logit (Grad-CAM keeps
# only the positive part), as for a class the model finds absent.
INDEX = "explanations.csv"
TOP_K = 3  # classes explained per image when none are named
GRID = "explanations.png"  # the report's grid
GRID_IMAGES = 4  # top-scoring validation images per class in the grid
# The image cache's part for explained images: their own, so that a data set's cache keeps its
# full list of images.
EXPLAINED = "explained"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def target_layer(backbone: nn.Module) -> nn.Module:
    """The layer whose feature maps explain ``backbone``'s predictions (see the module's notes)."""
    declared = getattr(backbone, EXPLAIN_LAYER, None)
    stages = [info["module"] for info in getattr(backbone, "feature_info", None) or []]
    if declared is None and stages:
        tokens = hasattr(backbone, "num_prefix_tokens") and len(stages) > 1
        declared = stages[-2] if tokens else stages[-1]
    if isinstance(declared, str):
        try:
            return backbone.get_submodule(declared)
        except AttributeError:
            raise CxrltError(
                f"The backbone {type(backbone).__name__} names {declared!r} as its layer to "
                f"explain, and has no such submodule: fix its {EXPLAIN_LAYER} attribute."
            ) from None
    if declared is not None:
        return declared
    convs = [module for module in backbone.modules() if isinstance(module, nn.Conv2d)]
    if not convs or hasattr(backbone, "num_prefix_tokens"):
        raise CxrltError(
            f"No layer to explain in the backbone {type(backbone).__name__}: it has no timm "
            "feature_info, and no 2-D convolution or, being a token model, none that would "
            f"explain. Set its {EXPLAIN_LAYER} attribute to the submodule (or its name) whose "
            "output maps or patch tokens Grad-CAM should weigh."
        )
    return convs[-1]


def feature_maps(backbone: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Grad-CAM's reshape: a layer's output as (B, C, H, W) maps, from NCHW or NHWC maps, or
    from (B, N, C) tokens of a square image without their prefix (class, register) tokens."""
    prefix = getattr(backbone, "num_prefix_tokens", 0)
    nhwc = getattr(backbone, "output_fmt", "NCHW") == "NHWC"

    def reshape(output: torch.Tensor) -> torch.Tensor:
        if output.ndim == 4:
            return output.permute(0, 3, 1, 2) if nhwc else output
        patches = output[:, prefix:]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise CxrltError(
                f"The explained layer of {type(backbone).__name__} gives {patches.shape[1]} "
                "patch tokens, not a square grid: set the backbone's "
                f"{EXPLAIN_LAYER} attribute to a layer with square maps."
            )
        return patches.reshape(len(patches), side, side, -1).permute(0, 3, 1, 2)

    return reshape


def _grad_cam() -> Any:
    try:
        from pytorch_grad_cam import GradCAM
    except ImportError:
        raise CxrltError(
            "Explanations need the grad-cam package: pip install 'cxrlt[explain]' "
            "(or pip install grad-cam)."
        ) from None
    return GradCAM


def _single_view(model: nn.Module) -> nn.Module:
    """``model`` with every test-time augmentation wrapper replaced by the model it wraps."""
    from cxrlt.post.tta import TTAModel

    if isinstance(model, TTAModel):
        return _single_view(model.model)
    for name, child in model.named_children():
        setattr(model, name, _single_view(child))
    return model


class Explainer:
    """Grad-CAM heatmaps of a run's classes: ``with Explainer(run) as explain:`` then
    ``explain(image, class_indices)``; leaving the block removes Grad-CAM's hooks. The run's
    model loses its test-time augmentation: take its probabilities before."""

    def __init__(self, run: TrainedRun) -> None:
        from cxrlt.post import classifier_of

        self.run = run
        model = _single_view(run.model).requires_grad_(True)
        backbone = classifier_of(model).backbone
        self.cam = _grad_cam()(
            model=model,
            target_layers=[target_layer(backbone)],
            reshape_transform=feature_maps(backbone),
        )

    def __enter__(self) -> Explainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cam.activations_and_grads.release()

    def __call__(self, image: np.ndarray, classes: Sequence[int]) -> np.ndarray:
        """Heatmaps in [0, 1], shape (len(classes), H, W), of a uint8 (H, W) image."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        batch = torch.from_numpy(np.array(image)).float().div_(255)
        batch = batch.expand(len(classes), 1, *batch.shape).contiguous().to(self.run.device)
        return self.cam(batch, targets=[ClassifierOutputTarget(int(c)) for c in classes])


def overlay(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """A uint8 (H, W) X-ray with a heatmap in [0, 1] laid over it in colour: uint8 (H, W, 3)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    grey = np.repeat(image[..., None].astype(np.float32) / 255, 3, axis=2)
    return show_cam_on_image(grey, heatmap.astype(np.float32), use_rgb=True)


def explainable_run(path: Path | str) -> RunConfig:
    """A complete single run's config; ensembles and evaluations are refused, naming the run
    to explain instead."""
    config = RunDir(path, check=False).read_config()
    if config.ensemble is not None:
        raise CxrltError(
            f"{path} is an ensemble: explain one of its member runs "
            f"({', '.join(config.ensemble.members)})."
        )
    if config.evaluation is not None:
        raise CxrltError(
            f"{path} is an evaluation of {config.evaluation.run} on another data set: explain "
            "that run itself."
        )
    return complete_run(path)[1]


def class_indices(config: RunConfig, classes: Sequence[str] | None) -> list[int] | None:
    """The indices of the named classes in the run's, or None when none are named; an unknown
    name is refused with the run's classes."""
    if not classes:
        return None
    known = list(config.data.classes)
    unknown = [name for name in classes if name not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"Closest to {unknown[0]!r}: {close[0]!r}. " if close else ""
        raise CxrltError(
            f"Unknown class {', '.join(map(repr, unknown))}. {hint}The run's classes are "
            f"{', '.join(known)}."
        )
    return [known.index(name) for name in dict.fromkeys(classes)]


def explain_images(
    run: Path | str,
    images: ImageSource,
    out: Path | str,
    *,
    classes: Sequence[str] | None = None,
    top_k: int = TOP_K,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Write a Grad-CAM overlay (PNG) per image and class into ``out``, and their index
    (:data:`INDEX`), which it returns.

    The classes are those named, else each image's ``top_k`` most probable. The run, the
    classes, the images (found and decodable) and ``out`` are checked before the model is
    built.
    """
    if top_k < 1:
        raise CxrltError(f"top_k must be at least 1, got {top_k}.")
    config = explainable_run(run)
    chosen = class_indices(config, classes)
    found = find_images(images)
    out = Path(out)
    check_output_file(out / INDEX)
    options = config.options
    cached = decode_into_cache(
        found.table, options.size, letterbox=options.letterbox, part=EXPLAINED
    )
    if cached.failures:
        raise unreadable_images(
            found.table, cached.failures, EXPLAINED, "No explanation was written"
        )
    trained = load_run(run, device)
    probs = trained.probabilities(trained.logits(cached.images))
    rows = []
    with Explainer(trained) as explain:
        names = short_names(found.table["ImageID"].tolist())
        for row, name in enumerate(found.table["ImageID"]):
            picked = chosen or np.argsort(-probs[row], kind="stable")[:top_k].tolist()
            for index, heatmap in zip(picked, explain(cached.images[row], picked), strict=True):
                cls = trained.classes[index]
                file = out / overlay_name(names[row], cls)
                _write_png(overlay(cached.images[row], heatmap), file)
                evidence = bool(heatmap.max() > 0)
                rows.append((name, cls, float(probs[row, index]), evidence, file.name))
    index = pd.DataFrame(rows, columns=["image", "class", "probability", "evidence", "file"])
    write_with(out / INDEX, lambda f: index.to_csv(f, index=False))
    return index


def short_names(images: Sequence[str]) -> list[str]:
    """Image names without the folders all of them share, so that files given by their full
    path get short overlay names (distinct names stay distinct)."""
    try:
        common = os.path.commonpath([os.path.dirname(name) for name in images])
    except ValueError:  # absolute and relative names mixed: kept whole
        return list(images)
    return [os.path.relpath(name, common) if common else name for name in images]


def overlay_name(image: str, cls: str) -> str:
    """The file of an image's overlay for a class: both names with other characters than
    letters, digits, ``.``, ``_`` and ``-`` (folders too) replaced by ``_``."""
    stem = _UNSAFE.sub("_", Path(image).with_suffix("").as_posix())
    return f"{stem}__{_UNSAFE.sub('_', cls)}.png"


def _write_png(pixels: np.ndarray, path: Path) -> Path:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return path


def rarest_top_images(
    train_counts: np.ndarray, scores: np.ndarray, n_classes: int, per_class: int
) -> dict[int, np.ndarray]:
    """The ``n_classes`` rarest classes with training positives (fewest first, ties in class
    order), each with the rows of its ``per_class`` highest ``scores``, highest first."""
    trained_on = np.flatnonzero(np.asarray(train_counts) > 0)
    rarest = trained_on[np.argsort(np.asarray(train_counts)[trained_on], kind="stable")]
    return {
        int(c): np.argsort(-scores[:, c], kind="stable")[:per_class] for c in rarest[:n_classes]
    }


def explanation_grid(
    run: Path | str,
    path: Path | str,
    *,
    n_classes: int = 3,
    per_class: int = GRID_IMAGES,
    device: torch.device | str = "cpu",
) -> Path:
    """A PNG grid of Grad-CAM overlays: a row for each of the ``n_classes`` rarest classes in
    training (those with positives), its ``per_class`` top-scoring validation images, each
    titled with its name, the run's probability, whether the image is labelled with the class,
    and "no evidence" where the map is zero everywhere (see :data:`INDEX`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from cxrlt.outputs.report import read_run
    from cxrlt.registry import resolve

    if n_classes < 1 or per_class < 1:
        raise CxrltError(
            f"A grid needs at least one class and one image, got {n_classes} and {per_class}."
        )
    config = explainable_run(run)
    results = read_run(run)
    counts = results.train_counts
    tops = rarest_top_images(counts, results.logits, n_classes, per_class)
    if not tops:
        raise CxrltError(f"{run} has no class with training positives: nothing to explain.")
    rarest = list(tops)
    options = config.options
    frame = resolve("datasets", options.dataset).build(path=options.data).frame
    paths = frame.drop_duplicates("ImageID").set_index("ImageID")["path"]
    wanted = pd.unique(np.concatenate([results.image_ids[rows] for rows in tops.values()]))
    missing = [name for name in wanted if name not in paths.index]
    if missing:
        raise CxrltError(
            f"The validation images {', '.join(map(str, missing[:5]))} of {run} are not in the "
            f"data set {options.dataset!r}{f' at {options.data}' if options.data else ''} any "
            "more: give the data the run was trained on."
        )
    table = pd.DataFrame({"ImageID": wanted, "path": paths[wanted].to_numpy()})
    cached = decode_into_cache(table, options.size, letterbox=options.letterbox, part=EXPLAINED)
    if cached.failures:
        raise unreadable_images(table, cached.failures, EXPLAINED, "No grid was drawn")
    pixels = dict(zip(wanted, cached.images, strict=True))
    final = results.probs[results.final]
    figure = Figure(figsize=(2.2 * per_class, 2.7 * len(rarest)))
    axes = figure.subplots(len(rarest), per_class, squeeze=False)
    with Explainer(load_run(run, device)) as explain:
        for ax_row, c in zip(axes, rarest, strict=True):
            ax_row[0].set_ylabel(f"{results.classes[c]}\n({counts[c]} in training)", fontsize=8)
            for ax, row in zip(ax_row, tops[c], strict=False):
                image = pixels[results.image_ids[row]]
                heatmap = explain(image, [c])[0]
                ax.imshow(overlay(image, heatmap))
                label = "positive" if results.targets[row, c] else "negative"
                note = "" if heatmap.max() > 0 else "\nno evidence"
                name = Path(str(results.image_ids[row])).stem
                name = name if len(name) <= 18 else f"{name[:8]}…{name[-8:]}"
                ax.set_title(f"{name}\np={final[row, c]:.2f}, {label}{note}", fontsize=7)
            for ax in ax_row:
                ax.set_xticks([])
                ax.set_yticks([])
    FigureCanvasAgg(figure)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    return Path(path)
