"""Every built-in registry entry keeps its kind's contract (cxrlt.testing); a new entry is
covered without new test code. Each checker also catches a deliberately broken object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from cxrlt.calibration.calibrators import TemperatureScaling
from cxrlt.calibration.thresholds import FixedThreshold
from cxrlt.data.labels import CXR_LT_2023_CLASSES, CXR_LT_2024_CLASSES
from cxrlt.data.samplers import UniformSampler
from cxrlt.data.synthetic import write_synthetic_cxr
from cxrlt.errors import CxrltError
from cxrlt.model.heads import LinearHead
from cxrlt.post import PostStep
from cxrlt.registry import Entry, Resolved, SubmissionFormat, registry, resolve
from cxrlt.testing import (
    check_calibrator_object,
    check_dataset_object,
    check_entry,
    check_head_object,
    check_loss_object,
    check_metadata,
    check_post_object,
    check_rejects_unknown_parameter,
    check_sampler_object,
    check_threshold_object,
)
from cxrlt.training.losses import BCELoss
from tests.unit.data.test_datasets import csv_folder, mimic_folder

TINY_SYNTHETIC = "synthetic:n_images=40,size=32"
# Per data set: its spec and the --data folder it reads (None: it needs none), built in the
# given empty folder in the layout that data set expects.
_DATA_FOLDERS: dict[str, Callable[[Path], tuple[str, str | None]]] = {
    "synthetic": lambda folder: (TINY_SYNTHETIC, None),
    "cxr-lt-2026": lambda folder: (
        "cxr-lt-2026",
        str(write_synthetic_cxr(folder, n_images=40, size=32, seed=3, n_test=5)),
    ),
    "cxr-lt-2024": lambda folder: (
        "cxr-lt-2024:train_csv=train.csv",
        str(mimic_folder(folder, CXR_LT_2024_CLASSES)),
    ),
    "cxr-lt-2023": lambda folder: ("cxr-lt-2023", str(mimic_folder(folder, CXR_LT_2023_CLASSES))),
    "csv": lambda folder: ("csv:patient_column=patient", str(csv_folder(folder))),
}
# Backbones too big to build in a quick test on a CPU.
_SLOW_BACKBONES = {"convnext_large"}


def _names(kind: str) -> list[str]:
    return [entry.name for entry in registry(kind).entries]


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (kind, name)
        for kind in ("losses", "samplers", "heads", "post", "calibrators", "thresholds")
        for name in _names(kind)
    ],
)
def test_builtin_entry_conforms(kind: str, name: str) -> None:
    check_entry(kind, name)


@pytest.mark.parametrize("name", _names("datasets"))
def test_builtin_dataset_conforms(name: str, tmp_path: Path) -> None:
    assert name in _DATA_FOLDERS, f"give the dataset {name!r} a folder builder in _DATA_FOLDERS"
    spec, path = _DATA_FOLDERS[name](tmp_path / "data")
    resolved = resolve("datasets", spec)
    check_metadata(resolved)
    check_rejects_unknown_parameter(resolved)
    check_dataset_object(resolved.build(path=path), f"The dataset {spec!r}")


@pytest.mark.parametrize("name", _names("backbones"))
def test_builtin_backbone_conforms(name: str) -> None:
    if name in _SLOW_BACKBONES:
        pytest.skip(f"the backbone {name!r} is too large for a quick CPU check")
    check_entry("backbones", name)


def test_check_entry_accepts_singular_kinds_and_names_unknown_entries() -> None:
    check_entry("loss", "focal:gamma=1.0")
    with pytest.raises(CxrltError, match="Unknown command 'train'"):
        check_entry("commands", "train")


def test_unknown_parameter_rule_applies_to_the_spec() -> None:
    with pytest.raises(CxrltError, match="no parameter 'no_such_param'"):
        check_entry("losses", "bce:no_such_param=1")


# ---- each checker catches a broken object ----------------------------------------------------


class _OverconfidentLoss(BCELoss):
    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return 2 * torch.sigmoid(logits)


class _SumLoss(BCELoss):
    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.elementwise(logits, targets.to(logits)).sum()


@pytest.mark.parametrize(
    ("loss", "rule"),
    [(_OverconfidentLoss(), "in \\[0, 1\\]"), (_SumLoss(), "mean reduction")],
)
def test_loss_check_catches_a_broken_loss(loss: nn.Module, rule: str) -> None:
    with pytest.raises(AssertionError, match=f"The broken loss breaks the rule: .*{rule}"):
        check_loss_object(loss, "The broken loss")


class _OffByOneSampler(UniformSampler):
    def indices(self, rng: np.random.Generator) -> np.ndarray:
        return super().indices(rng) + 1


def test_sampler_check_catches_out_of_range_indices() -> None:
    sampler = _OffByOneSampler(np.zeros((10, 3)))
    with pytest.raises(AssertionError, match=r"indices lie in \[0, 10\)"):
        check_sampler_object(sampler, 10)


class _WideHead(LinearHead):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([super().forward(features), features[:, :1]], dim=1)


def test_head_check_catches_a_wrong_output_shape() -> None:
    with pytest.raises(AssertionError, match=r"give \(B, n_classes\) logits"):
        check_head_object(_WideHead(8, 3), 8, 3)


class _RandomScales(nn.Module):
    def __init__(self, model: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.model, self.scales = model, nn.Parameter(torch.rand(n_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images) * self.scales


class _RandomWrap(PostStep):
    def wrap(self, model: nn.Module, classes: Any) -> nn.Module:
        return _RandomScales(model, len(classes))


def test_post_check_catches_a_random_wrap() -> None:
    with pytest.raises(AssertionError, match="wrap adds no random or learned values"):
        check_post_object(_RandomWrap)


class _ForgetfulTemperature(TemperatureScaling):
    def state(self) -> dict[str, Any]:
        return {**super().state(), "temperature": 1.0}


def test_calibrator_check_catches_a_lossy_state() -> None:
    def reload(state: Any) -> TemperatureScaling:
        return TemperatureScaling().load_state(state, fallback=lambda z: 1 / (1 + np.exp(-z)))

    with pytest.raises(AssertionError, match="JSON and back transforms identically"):
        check_calibrator_object(_ForgetfulTemperature(), reload)


class _OutOfRangeThreshold(FixedThreshold):
    def _fit(self, probs: np.ndarray, targets: np.ndarray, train_prevalence: Any) -> np.ndarray:
        return np.full(probs.shape[1], 1.5)


def test_threshold_check_catches_thresholds_above_one() -> None:
    with pytest.raises(AssertionError, match=r"thresholds lie in \[0, 1\]"):
        check_threshold_object(_OutOfRangeThreshold(), FixedThreshold().load_state)


def test_dataset_check_catches_labels_that_are_not_binary() -> None:
    data = resolve("datasets", TINY_SYNTHETIC).build()
    frame = data.frame.copy()
    frame.loc[0, data.classes[0]] = 2
    with pytest.raises(AssertionError, match="labels are 0 or 1"):
        check_dataset_object(replace(data, frame=frame))


@pytest.mark.parametrize(
    ("metadata", "rule"),
    [
        ({"paper": "Lin et al.", "deviations": {"gama": "a typo"}}, "each deviation names"),
        ({"head": "no-such-head"}, "its declared head resolves"),
    ],
)
def test_metadata_check_catches_a_wrong_deviation_or_head(metadata: dict, rule: str) -> None:
    if "deviations" in metadata:
        metadata["deviations"] = MappingProxyType(metadata["deviations"])
    entry = Entry("losses", "focal-x", "cxrlt.training.losses:FocalLoss", "test", **metadata)
    with pytest.raises(AssertionError, match=f"breaks the rule: {rule}"):
        check_metadata(Resolved(entry, {"gamma": 2.0, "alpha": None}))


@pytest.mark.parametrize(
    ("fmt", "rule"),
    [
        (SubmissionFormat("dup", "id", ("a", "a")), "names its classes once each"),
        (SubmissionFormat("id-too", "id", ("id", "a")), "apart from the id column"),
        (SubmissionFormat("empty", "id", ()), "names its classes once each"),
        (SubmissionFormat("lost", "id", "cxrlt.data.labels:NO_SUCH"), "classes load"),
    ],
)
def test_metadata_check_catches_a_broken_submission_format(fmt: SubmissionFormat, rule: str):
    entry = Entry("datasets", "films", "cxrlt.data.embedded:synthetic_dataset", "test")
    with pytest.raises(AssertionError, match=f"breaks the rule: .*{rule}"):
        check_metadata(Resolved(replace(entry, submissions=(fmt,)), {}))
