"""Post-train, calibrate and choose thresholds from Python, scored on images they never saw.

python examples/post_train_and_calibrate.py            # a few minutes on a laptop CPU
python examples/post_train_and_calibrate.py --quick    # seconds: what the test suite runs

The calibrator and the thresholds are fitted on one half of the validation split and scored
on the other half: scored on the images they were fitted on, they would flatter themselves.
"""

from __future__ import annotations

import argparse

from fastai.data.load import DataLoader
from fastai.learner import Learner

from cxrlt import cxr_dataloaders, cxr_learner
from cxrlt.calibration.learner import calibrated_probabilities, predicted_labels
from cxrlt.data.loaders import ArraySet
from cxrlt.data.split import validation_halves
from cxrlt.evaluation.metrics import evaluate


def report_on(learn: Learner, dl: DataLoader, stage: str) -> dict[str, float]:
    """mF1 and ECE of ``learn``'s calibrated probabilities and threshold decisions on ``dl``."""
    logits, targets = learn.get_preds(dl=dl, act=lambda x: x)
    probs = calibrated_probabilities(learn, logits)
    decided = predicted_labels(learn, probs)
    report = evaluate(probs, targets.numpy(), learn.dls.classes, predicted=decided)
    print(f"{stage}: mF1 {report.overall['mF1']:.3f}  ECE {report.overall['ECE']:.3f}")
    return report.overall


def main(quick: bool) -> tuple[dict[str, float], dict[str, float]]:
    data = "synthetic:n_images=160,size=32" if quick else "synthetic"
    dls = cxr_dataloaders(data, size=32 if quick else 64, bs=32, seed=0)
    learn = cxr_learner(dls, arch="resnet18", loss="bce")
    learn.fit_one_cycle(1 if quick else 8, 2e-3)

    # Cut the validation images into a fitting half and a reporting half, by patient.
    valid = dls.valid.dataset
    half = validation_halves(dls.data.patients[dls.is_valid], dls.data.labels[dls.is_valid])
    fit_dl, report_dl = (
        dls.valid.new(ArraySet(valid.images, valid.rows[rows], valid.targets[rows].numpy()))
        for rows in (half == 0, half == 1)
    )

    before = report_on(learn, report_dl, "before")
    # Test-time augmentation (it chooses nothing), then temperature scaling and per-class F1
    # thresholds fitted on the fitting half only: the same string as `cxrlt run --post`.
    learn.post("tta,temp-scale,f1-per-class", dl=fit_dl)
    after = report_on(learn, report_dl, "after")
    return before, after


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch")
    main(parser.parse_args().quick)
