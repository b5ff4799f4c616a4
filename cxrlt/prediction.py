"""Predictions of a finished run on new images: the model rebuilt from the run directory.

A run directory holds weights and specs, no pickled code. The model is rebuilt from the specs
(backbone, head, then the structural part of every post-training step), the weights are
loaded, and logits become probabilities through the run's calibrator, or the loss's own
activation when it has none (and for the classes the calibrator could not fit). Images are
decoded as training decoded them (the run's size and letterbox, the same windowing), through
the image cache; an ensemble's members each decode at their own size and are merged. Where
the images' table names their studies, a run whose post steps merge a study's views merges
them as it did for its validation images.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cxrlt.calibration.calibrators import LossActivation
from cxrlt.data.table import STUDY_COLUMN
from cxrlt.errors import CxrltError
from cxrlt.outputs.run_dir import CALIBRATION, CONFIG, WEIGHTS, RunDir, load_weights
from cxrlt.outputs.run_schema import (
    COMPLETE,
    PREDICTED,
    PROB,
    TRAINED,
    RunConfig,
    class_columns,
)
from cxrlt.registry import Resolved, resolve
from cxrlt.spec import Spec

# Files a folder is searched for (any letter case); a file without a suffix counts when it
# has the DICOM header, as DICOM exports often have none.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
NEW_IMAGES = "images"  # the cache part of images predicted from a folder or files
# A prediction table: indexed by image, then per class its probability and binary prediction,
# then why the image has neither (it could not be decoded and was skipped), else empty.
IMAGE_COLUMN = "image"
PREDICTION_KINDS = (PROB, PREDICTED)
PROBLEM_COLUMN = "problem"
_DICOM_MAGIC = (128, b"DICM")  # offset and bytes of the DICOM header

ImageSource = str | Path | Sequence[str | Path]


def prediction_columns(classes: Sequence[str]) -> list[str]:
    """The columns of a prediction table after its index: ``prob:<class>``,
    ``predicted:<class>``, then ``problem``."""
    return [name for kind in PREDICTION_KINDS for name in class_columns(kind, classes)] + [
        PROBLEM_COLUMN
    ]


@dataclass(frozen=True)
class ImageFiles:
    """The images to predict: a table (ImageID, path) and how many other files the folders
    held (not images by their name: left out, and said so)."""

    table: pd.DataFrame
    ignored: int = 0


def find_images(images: ImageSource) -> ImageFiles:
    """The image files of a folder, a file, or a list of both.

    A folder is searched recursively for PNG, JPEG and DICOM files (by suffix, or a DICOM
    header for files without one), skipping hidden files and folders; each is named by its
    path relative to the folder. A file given by name is taken whatever its suffix, named as
    given. Two images with one name are refused.
    """
    items = [images] if isinstance(images, str | Path) else list(images)
    if not items:
        raise CxrltError("No images given: pass a folder of images, or image files.")
    rows: dict[str, str] = {}
    ignored = 0
    for item in map(Path, items):
        if item.is_dir():
            found, others = _folder_images(item)
            ignored += others
            if not found:
                raise CxrltError(
                    f"{item} holds no images: none of its files (searched recursively) ends "
                    f"in {', '.join(IMAGE_SUFFIXES)} or is a DICOM file. Check the folder, or "
                    "give the image files themselves."
                )
        elif item.is_file():
            found = [(str(item), item)]
        else:
            raise CxrltError(f"{item} does not exist: give a folder of images or image files.")
        for name, path in found:
            if name in rows:
                raise CxrltError(
                    f"Two images are named {name!r} ({rows[name]} and {path.resolve()}): give "
                    "their common folder instead, or each file once."
                )
            rows[name] = str(path.resolve())
    return ImageFiles(pd.DataFrame({"ImageID": list(rows), "path": list(rows.values())}), ignored)


def _folder_images(folder: Path) -> tuple[list[tuple[str, Path]], int]:
    """A folder's images, sorted by name relative to it, and the count of its other files."""
    found, others = [], 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(root, name)
            if name.startswith("."):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES or (not path.suffix and _is_dicom(path)):
                found.append((path.relative_to(folder).as_posix(), path))
            else:
                others += 1
    return sorted(found), others


def _is_dicom(path: Path) -> bool:
    offset, magic = _DICOM_MAGIC
    try:
        with path.open("rb") as file:
            return file.read(offset + len(magic))[offset:] == magic
    except OSError:
        return False


@dataclass(frozen=True)
class Scores:
    """A run's probabilities and ranking scores (logits, or an ensemble's merged ones) for the
    rows of a table; rows whose image could not be decoded are NaN, their reason in
    ``failures``."""

    probs: np.ndarray
    logits: np.ndarray
    failures: dict[int, str]


class Predictor(ABC):
    """What a finished run or ensemble offers: its classes and thresholds, scores for a table
    of images, and predictions for image files."""

    classes: tuple[str, ...]
    thresholds: np.ndarray

    @abstractmethod
    def scores(
        self, images: pd.DataFrame, *, bs: int = 64, part: str = "test", skip_bad: bool = False
    ) -> Scores:
        """Scores for the images of a table (ImageID, path) decoded into the cache ``part``;
        an unreadable image stops it before any model runs, unless ``skip_bad``."""

    def predict(
        self, images: ImageSource | ImageFiles, *, bs: int = 64, skip_bad: bool = False
    ) -> pd.DataFrame:
        """Per image (a folder, searched recursively, files, or :func:`find_images`'s
        result), the calibrated probability and the threshold policy's 0/1 prediction of
        each class, indexed by image name (see :func:`prediction_columns`).

        An image that cannot be decoded stops it, naming the file and the reason, unless
        ``skip_bad``: its row then has no values and the reason in ``problem``.
        """
        if bs < 1:
            raise CxrltError(f"bs must be at least 1, got {bs}.")
        found = images if isinstance(images, ImageFiles) else find_images(images)
        scores = self.scores(found.table, bs=bs, part=NEW_IMAGES, skip_bad=skip_bad)
        predicted = pd.DataFrame(scores.probs >= self.thresholds).astype("Int8")
        predicted.iloc[sorted(scores.failures)] = pd.NA
        frame = pd.concat([pd.DataFrame(scores.probs), predicted], axis=1, ignore_index=True)
        frame[PROBLEM_COLUMN] = [scores.failures.get(row) for row in range(len(frame))]
        frame.columns = prediction_columns(self.classes)
        frame.index = pd.Index(found.table["ImageID"], name=IMAGE_COLUMN)
        return frame


@dataclass
class TrainedRun(Predictor):
    """A finished run, ready to predict."""

    path: Path
    config: RunConfig
    model: nn.Module
    loss: nn.Module
    calibrator: Any  # a fitted Calibrator, or None
    thresholds: np.ndarray  # the threshold policy's, one per class
    device: torch.device

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.data.classes

    @property
    def size(self) -> int:
        return self.config.options.size

    @property
    def letterbox(self) -> bool:
        return self.config.options.letterbox

    def logits(self, images: np.ndarray, bs: int = 64) -> np.ndarray:
        """Logits for uint8 images of shape (N, H, W), in batches."""
        return predict_logits(self.model, images, bs, self.device)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The run's probabilities: calibrated, or the loss's activation."""
        if self.calibrator is not None:
            return self.calibrator.transform(logits)
        return LossActivation(self.loss)(logits)

    def scores(
        self, images: pd.DataFrame, *, bs: int = 64, part: str = "test", skip_bad: bool = False
    ) -> Scores:
        """The images of a table (ImageID, path, and where known their study) decoded at the
        run's size into the cache ``part``; an unreadable one stops it before the model runs,
        unless ``skip_bad``. The logits of a study's images are merged as the run's post
        steps say (an unreadable image takes no part)."""
        from cxrlt.post.study_views import apply_to_predictions

        cached = decode_into_cache(images, self.size, letterbox=self.letterbox, part=part)
        if cached.failures and not skip_bad:
            raise unreadable_images(images, cached.failures, part)
        table = images.reset_index(drop=True)
        if cached.failures and STUDY_COLUMN in table:
            table.loc[sorted(cached.failures), STUDY_COLUMN] = ""
        logits = apply_to_predictions(
            post_steps(self.config), self.logits(cached.images, bs), table
        )
        probs = self.probabilities(logits)
        return _blank_failures(Scores(probs, logits, cached.failures))


@dataclass
class TrainedEnsemble(Predictor):
    """A finished ensemble, ready to predict: its members' probabilities merged."""

    path: Path
    config: RunConfig
    members: list[Predictor]
    thresholds: np.ndarray

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.data.classes

    def scores(
        self, images: pd.DataFrame, *, bs: int = 64, part: str = "test", skip_bad: bool = False
    ) -> Scores:
        """Each member predicts at its own size; an image any member could not decode is
        left out of all."""
        from cxrlt.ensemble import merge_probabilities

        ensemble = self.config.ensemble
        members = [m.scores(images, bs=bs, part=part, skip_bad=skip_bad) for m in self.members]
        failures: dict[int, str] = {}
        for scores in members:
            for row, why in scores.failures.items():
                failures.setdefault(row, why)
        probs, logits = merge_probabilities(
            [scores.probs for scores in members], ensemble.weights, ensemble.merge
        )
        return _blank_failures(Scores(probs, logits, dict(sorted(failures.items()))))


def _blank_failures(scores: Scores) -> Scores:
    """``scores`` with NaN in the rows of images that could not be decoded (their slot in the
    cache is zeros, no X-ray)."""
    if not scores.failures:
        return scores
    rows = sorted(scores.failures)
    probs, logits = scores.probs.copy(), scores.logits.copy()
    probs[rows], logits[rows] = np.nan, np.nan
    return Scores(probs, logits, scores.failures)


def decode_test_images(
    test: Any, size: int, *, letterbox: bool, part: str = "test", consequence: str | None = None
) -> np.ndarray:
    """Decode the images of a table (ImageID, path) into the cache; any unreadable one stops it.

    ``part`` is the cache's (see :func:`cxrlt.data.cache.cache_folder`): "test" for the test
    images, "" for labelled images, which then share the cache that training on them built.
    ``consequence`` says what the stop left undone (default: the submission or the output).
    """
    cached = decode_into_cache(test, size, letterbox=letterbox, part=part)
    if cached.failures:
        raise unreadable_images(test, cached.failures, part, consequence)
    return cached.images


def decode_into_cache(table: Any, size: int, *, letterbox: bool, part: str) -> Any:
    """The images of a table (ImageID, path) in the cache ``part``, with a progress bar while
    decoding: :class:`cxrlt.data.cache.CachedImages`, unreadable images in its ``failures``."""
    from cxrlt.data.cache import cache_folder, prepare_images

    paths = table["path"].tolist()
    folder = cache_folder(paths, size, letterbox=letterbox, part=part)
    return prepare_images(paths, size, letterbox=letterbox, folder=folder)


def unreadable_images(
    table: Any, failures: dict[int, str], part: str, consequence: str | None = None
) -> CxrltError:
    """The stop for images that could not be decoded: how many, the first few with their
    reason, what was left undone and the fix (for new images, also how to skip them)."""
    from cxrlt.data.problems import SHOWN, SKIP_HINT

    listed = ", ".join(
        f"{table['ImageID'].iloc[i]} ({failures[i]})" for i in sorted(failures)[:SHOWN]
    )
    more = f", and {len(failures) - SHOWN} more" if len(failures) > SHOWN else ""
    lost = consequence or ("No submission was written" if part == "test" else "Nothing was written")
    fix = "fix or replace the files"
    if part == NEW_IMAGES:
        fix += f", or leave them out with {SKIP_HINT} (skip_bad=True in Python)"
    kind = {"test": "test images", "": "labelled images"}.get(part, "images")
    return CxrltError(
        f"{len(failures)} of {len(table)} {kind} cannot be read: {listed}{more}. {lost}: "
        f"{fix}, then run the command again."
    )


def predict_logits(
    model: nn.Module, images: np.ndarray, bs: int, device: torch.device
) -> np.ndarray:
    """Run ``model`` over uint8 (N, H, W) images in evaluation mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), bs):
            batch = torch.from_numpy(np.array(images[start : start + bs]))  # off the memmap
            batch = batch.unsqueeze(1).to(device).float().div_(255)
            out.append(model(batch).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def backbone_without_weights(spec: Resolved | Spec | str) -> Resolved:
    """The run's backbone spec, minus pretrained or file weights: the run's own are loaded."""
    arch = resolve("backbones", spec)
    params = {key: value for key, value in arch.params.items() if key != "weights"}
    if "pretrained" in arch.entry.params():
        params["pretrained"] = False
    return resolve("backbones", Spec(arch.entry.name, params))


def complete_run(path: Path | str, *, trained: bool = False) -> tuple[RunDir, RunConfig]:
    """A finished run's folder and config; an unfinished one is refused, naming the fix.

    ``trained`` also accepts a run whose training finished but whose post-training or
    evaluation failed (status "trained"): its weights are whole.
    """
    run_dir = RunDir(path, check=False)
    config = run_dir.read_config()
    accepted = (COMPLETE, TRAINED) if trained else (COMPLETE,)
    if config.status not in accepted or not run_dir.file(WEIGHTS).is_file():
        raise CxrltError(
            f"{run_dir.path} is not a complete run (no {WEIGHTS}, or it never finished): "
            f"finish it with `cxrlt run --resume {run_dir.path}`, or pick another run."
        )
    return run_dir, config


def post_steps(config: RunConfig) -> list[str]:
    """The specs of the post-training steps a run's model went through, in order."""
    return [step.spec or step.name for step in config.post]


def load_run(path: Path | str, device: torch.device | str = "cpu") -> TrainedRun | TrainedEnsemble:
    """A finished run or ensemble rebuilt from its directory, ready to :meth:`~Predictor.predict`:
    a run's model, loss, calibrator and thresholds; an ensemble's members, each loaded so."""
    run_dir = RunDir(path, check=False)
    config = run_dir.read_config()
    if config.ensemble is not None:
        members = [load_run(member, device) for member in config.ensemble.members]
        data = config.required("data", run_dir.file(CONFIG))
        thresholds = saved_thresholds(run_dir.path, len(data.classes))
        return TrainedEnsemble(run_dir.path, config, members, thresholds)
    return _load_model_run(path, torch.device(device))


def _load_model_run(path: Path | str, device: torch.device) -> TrainedRun:
    """Rebuild a complete run's model, loss, calibrator and thresholds from its directory."""
    from cxrlt.calibration.calibrators import calibrator_from_state
    from cxrlt.model.build import build_model
    from cxrlt.model.preprocessing import Preprocessing
    from cxrlt.post import rebuild

    run_dir, config = complete_run(path)
    file = run_dir.file(CONFIG)
    config.required("options", file)  # the size and letterbox its images are decoded with
    config.required("specs", file)
    data, specs = config.required("data", file), config.spec_strings
    pinned = config.preprocessing and Preprocessing.from_dict(config.preprocessing, str(file))
    model = build_model(
        backbone_without_weights(specs["arch"]),
        resolve("heads", specs["head"]),
        len(data.classes),
        preprocessing=pinned or None,
    )
    model = rebuild(model, post_steps(config), list(data.classes))
    load_weights(model, run_dir.file(WEIGHTS))
    loss = resolve("losses", specs["loss"]).build(
        class_counts=list(data.train_counts), n_items=data.n_train
    )
    calibration = run_dir.read_calibration()
    calibrator = None
    if saved := calibration.get("calibrator"):
        calibrator = calibrator_from_state(
            saved["spec"], saved["state"], fallback=LossActivation(loss)
        )
    thresholds = _policy_thresholds(run_dir, calibration, len(data.classes))
    return TrainedRun(run_dir.path, config, model.to(device), loss, calibrator, thresholds, device)


def predict_submission(
    run: Path | str,
    out: Path | str,
    *,
    dataset: str | None = None,
    data: str | None = None,
    bs: int = 64,
    device: torch.device | str = "cpu",
) -> Path:
    """Write the challenge file for a data set's test images with a finished run (or an
    ensemble of runs, each member predicting and the results merged as the ensemble says).

    ``dataset`` and ``data`` default to the run's own; the format follows the data set and the
    run's classes, and the file is validated (every test image once, official columns,
    probabilities in [0, 1]) before it is written.
    """
    from cxrlt.outputs.submission import write_dataset_submission

    run_dir = RunDir(run, check=False)
    config = run_dir.read_config()
    options = config.required("options", run_dir.file(CONFIG))
    dataset = dataset or options.dataset
    data = data if data is not None else options.data
    resolved = resolve("datasets", dataset)
    images_set = resolved.build(path=data)
    if images_set.test is None:
        raise CxrltError(
            f"The data set {dataset!r}{f' at {data}' if data else ''} has no test images "
            "(for CXR-LT 2026: test_task1.csv beside train.csv): nothing to predict."
        )
    probs, _ = predict_table(run, images_set.test, bs=bs, device=device)
    ids = images_set.test["ImageID"]
    classes = config.required("data", run_dir.file(CONFIG)).classes
    return write_dataset_submission(out, resolved.entry, ids, probs, list(classes))[0]


def predict_table(
    run: Path | str,
    images: Any,
    *,
    bs: int = 64,
    device: torch.device | str = "cpu",
    part: str = "test",
) -> tuple[np.ndarray, np.ndarray]:
    """A finished run's probabilities and ranking scores for the images of a table (ImageID,
    path), each image decoded at the run's size into the cache ``part``; any unreadable image
    stops it.

    The scores are the logits; an ensemble's members predict at their own sizes and are merged
    as the ensemble says, its scores being the merged logits.
    """
    scores = load_run(run, device).scores(images, bs=bs, part=part)
    return scores.probs, scores.logits


def saved_thresholds(run: Path | str, n_classes: int) -> np.ndarray:
    """The thresholds of a run's threshold policy (calibration.json), one per class; 0.5 for
    runs without one (ensembles, runs older than the policies)."""
    run_dir = RunDir(run, check=False)
    return _policy_thresholds(run_dir, run_dir.read_calibration(), n_classes)


def _policy_thresholds(run_dir: RunDir, calibration: dict[str, Any], n_classes: int) -> np.ndarray:
    from cxrlt.calibration.thresholds import threshold_policy_from_state

    saved = calibration.get("thresholds")
    if not saved:
        return np.full(n_classes, 0.5)
    thresholds = threshold_policy_from_state(saved["spec"], saved["state"]).thresholds
    if thresholds.shape != (n_classes,):
        raise CxrltError(
            f"{run_dir.file(CALIBRATION)} holds {thresholds.size} thresholds for the run's "
            f"{n_classes} classes: the file does not belong to this run."
        )
    return thresholds
