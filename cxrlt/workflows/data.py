"""The data stage of a run: the data set split and loaded, the validation split cut into the
halves that choose and report, and the test images decoded before any training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cxrlt.errors import CxrltError

if TYPE_CHECKING:
    from cxrlt.options import RunOptions
    from cxrlt.workflows.specs import RunSpecs


@dataclass(frozen=True)
class RunData:
    """The loaders, the validation half of each validation image, and the decoded test images
    (None without a test set)."""

    dls: Any
    halves: Any  # np.ndarray
    test_images: Any = None

    @property
    def split(self) -> Any:
        """The split table of the run directory (ImageID, PatientID, side, half)."""
        return self.dls.split_table(self.halves)


def load_data(options: RunOptions, specs: RunSpecs, device: Any) -> RunData:
    """Every rank loads alike: the image cache is shared, the split comes from the seed."""
    dls = run_dataloaders(options, specs, device)
    test_images = decode_test_images(options, dls)
    return RunData(dls, split_halves(dls, options.seed), test_images)


def run_dataloaders(options: RunOptions, specs: RunSpecs, device: Any) -> Any:
    """The data set split and loaded as ``options`` say."""
    from cxrlt.data.loaders import cxr_dataloaders

    return cxr_dataloaders(
        specs.dataset,
        path=options.data,
        size=options.size,
        bs=options.bs,
        sampler=specs.sampler,
        valid_frac=options.valid_frac,
        seed=options.seed,
        device=device,
        skip_bad=options.skip_bad,
        letterbox=options.letterbox,
        augment=options.augment,
    )


def decode_test_images(options: RunOptions, dls: Any) -> Any:
    """The data set's test images, decoded (into the cache) before training, so that an
    unreadable one stops the run before it costs a training run; None without test images."""
    from cxrlt.prediction import decode_test_images as decode

    if dls.data.test is None:
        return None
    return decode(
        dls.data.test, options.size, letterbox=options.letterbox, consequence="Nothing was trained"
    )


def split_halves(dls: Any, seed: int) -> Any:
    """The patient-grouped half (0 or 1) of each validation image."""
    from cxrlt.data.split import validation_halves

    valid = dls.is_valid
    try:
        return validation_halves(dls.data.patients[valid], dls.data.labels[valid], seed=seed)
    except ValueError:
        raise CxrltError(
            "The validation split holds a single patient, so it cannot be cut into the two "
            "halves that choose (the epoch, calibration, thresholds) and report: use a larger "
            "--valid-frac."
        ) from None
