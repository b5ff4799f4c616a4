"""Predictions of a finished run on new images: the model rebuilt from the run directory.

A run directory holds weights and specs, no pickled code. The model is rebuilt from the specs
(backbone, head, then the structural part of every post-training step), the weights are
loaded, and logits become probabilities through the run's calibrator, or the loss's own
activation when it has none (and for the classes the calibrator could not fit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.io import read_json
from cxrlt.outputs.run_dir import CALIBRATION, WEIGHTS, RunDir, load_weights
from cxrlt.registry import resolve
from cxrlt.spec import Spec, parse_spec


@dataclass
class TrainedRun:
    """A finished run, ready to predict."""

    path: Path
    config: dict[str, Any]
    model: nn.Module
    loss: nn.Module
    calibrator: Any  # a fitted Calibrator, or None
    device: torch.device

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.config["data"]["classes"])

    @property
    def size(self) -> int:
        return int(self.config["options"]["size"])

    @property
    def letterbox(self) -> bool:
        return bool(self.config["options"]["letterbox"])

    def logits(self, images: np.ndarray, bs: int = 64) -> np.ndarray:
        """Logits for uint8 images of shape (N, H, W), in batches."""
        return predict_logits(self.model, images, bs, self.device)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The run's probabilities: calibrated, or the loss's activation."""
        if self.calibrator is not None:
            return self.calibrator.transform(logits)
        return numpy_activation(self.loss)(logits)


def numpy_activation(loss: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """The loss's ``activation`` as numpy logits -> float64 probabilities, computed in
    float64, whose sigmoid saturates to 1.0 past about 36.7 rather than float32's 16.6 (with
    LDAM's s = 30 that is z > 1.2 rather than 0.55). Calibrators take it as their fallback."""

    def activation(logits: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
            return loss.activation(z).double().numpy()

    return activation


def decode_test_images(
    test: Any, size: int, *, letterbox: bool, part: str = "test", consequence: str | None = None
) -> np.ndarray:
    """Decode the images of a table (ImageID, path) into the cache; any unreadable one stops it.

    ``part`` is the cache's (see :func:`cxrlt.data.cache.cache_folder`): "test" for the test
    images, "" for labelled images, which then share the cache that training on them built.
    ``consequence`` says what the stop left undone (default: the submission or the output).
    """
    from cxrlt.data.cache import cache_folder, prepare_images

    paths = test["path"].tolist()
    folder = cache_folder(paths, size, letterbox=letterbox, part=part)
    cached = prepare_images(paths, size, letterbox=letterbox, folder=folder)
    if cached.failures:
        listed = ", ".join(
            f"{test['ImageID'].iloc[i]} ({cached.failures[i]})" for i in sorted(cached.failures)[:5]
        )
        lost = consequence or (
            "No submission was written" if part == "test" else "Nothing was written"
        )
        raise CxrltError(
            f"{len(cached.failures)} of {len(test)} {part or 'labelled'} images cannot be read: "
            f"{listed}. {lost}: fix or replace the files, then run the command again."
        )
    return cached.images


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


def backbone_without_weights(spec: str) -> Any:
    """The run's backbone spec, minus pretrained or file weights: the run's own are loaded."""
    arch = parse_spec(spec)
    params = {key: value for key, value in arch.params.items() if key != "weights"}
    if "pretrained" in resolve("backbones", arch).entry.params():
        params["pretrained"] = False
    return resolve("backbones", Spec(arch.name, params))


def complete_run(path: Path | str, *, trained: bool = False) -> tuple[RunDir, dict[str, Any]]:
    """A finished run's folder and config; an unfinished one is refused, naming the fix.

    ``trained`` also accepts a run whose training finished but whose post-training or
    evaluation failed (status "trained"): its weights are whole.
    """
    run_dir = RunDir(path, check=False)
    config = run_dir.read_config()
    accepted = ("complete", "trained") if trained else ("complete",)
    if config.get("status") not in accepted or not run_dir.file(WEIGHTS).is_file():
        raise CxrltError(
            f"{run_dir.path} is not a complete run (no {WEIGHTS}, or it never finished): "
            f"finish it with `cxrlt run --resume {run_dir.path}`, or pick another run."
        )
    return run_dir, config


def post_steps(config: dict[str, Any]) -> list[str]:
    """The specs of the post-training steps a run's model went through, in order."""
    return [step["spec"] for step in config.get("post", [])]


def load_run(path: Path | str, device: torch.device | str = "cpu") -> TrainedRun:
    """Rebuild a complete run's model, loss and calibrator from its directory."""
    from cxrlt.calibration.calibrators import calibrator_from_state
    from cxrlt.post import rebuild
    from cxrlt.training.learner import build_model

    run_dir, config = complete_run(path)
    specs, data = config["specs"], config["data"]
    model = build_model(
        backbone_without_weights(specs["arch"]["spec"]),
        resolve("heads", specs["head"]["spec"]),
        len(data["classes"]),
    )
    model = rebuild(model, post_steps(config), data["classes"])
    load_weights(model, run_dir.file(WEIGHTS))
    device = torch.device(device)
    loss = resolve("losses", specs["loss"]["spec"]).build(
        class_counts=data["train_counts"], n_items=data["n_train"]
    )
    calibration = run_dir.file(CALIBRATION)
    calibrator = None
    if calibration.is_file():
        saved = read_json(calibration).get("calibrator")
        if saved:
            calibrator = calibrator_from_state(
                saved["spec"], saved["state"], fallback=numpy_activation(loss)
            )
    return TrainedRun(run_dir.path, config, model.to(device), loss, calibrator, device)


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

    config = RunDir(run, check=False).read_config()
    dataset = dataset or config["options"]["dataset"]
    data = data if data is not None else config["options"].get("data")
    images_set = resolve("datasets", dataset).build(path=data)
    if images_set.test is None:
        raise CxrltError(
            f"The data set {dataset!r}{f' at {data}' if data else ''} has no test images "
            "(for CXR-LT 2026: test_task1.csv beside train.csv): nothing to predict."
        )
    probs, _ = predict_table(run, images_set.test, bs=bs, device=device)
    ids = images_set.test["ImageID"]
    return write_dataset_submission(out, images_set.name, ids, probs, config["data"]["classes"])[0]


def predict_table(
    run: Path | str,
    images: Any,
    *,
    bs: int = 64,
    device: torch.device | str = "cpu",
    part: str = "test",
) -> tuple[np.ndarray, np.ndarray]:
    """A finished run's probabilities and ranking scores for the images of a table (ImageID,
    path), each image decoded at the run's size into the cache ``part``.

    The scores are the logits; an ensemble's members predict at their own sizes and are merged
    as the ensemble says, its scores being the merged logits.
    """
    config = RunDir(run, check=False).read_config()
    if "ensemble" in config:
        from cxrlt.ensemble import merge_probabilities

        ensemble = config["ensemble"]
        members = [
            predict_table(member, images, bs=bs, device=device, part=part)[0]
            for member in ensemble["members"]
        ]
        return merge_probabilities(members, ensemble["weights"], ensemble["merge"])
    trained = load_run(run, device)
    pixels = decode_test_images(images, trained.size, letterbox=trained.letterbox, part=part)
    logits = trained.logits(pixels, bs)
    return trained.probabilities(logits), logits


def saved_thresholds(run: Path | str, n_classes: int) -> np.ndarray:
    """The thresholds of a run's threshold policy (calibration.json), one per class; 0.5 for
    runs without one (ensembles, runs older than the policies)."""
    from cxrlt.calibration.thresholds import threshold_policy_from_state

    calibration = RunDir(run, check=False).file(CALIBRATION)
    saved = read_json(calibration).get("thresholds") if calibration.is_file() else None
    if not saved:
        return np.full(n_classes, 0.5)
    thresholds = threshold_policy_from_state(saved["spec"], saved["state"]).thresholds
    if thresholds.shape != (n_classes,):
        raise CxrltError(
            f"{calibration} holds {thresholds.size} thresholds for the run's {n_classes} "
            "classes: the file does not belong to this run."
        )
    return thresholds
