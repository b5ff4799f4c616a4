"""Validation splits grouped by patient and stratified across labels.

No patient has images on both sides. Labels are stratified at the patient level (a patient
counts as positive for a class when any of their images is), by iterative stratification
(Sechidis et al., 2011), so rare classes land on both sides as far as grouping allows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxrlt.errors import CxrltError


def patient_split(
    patients: np.ndarray, labels: np.ndarray, *, valid_frac: float = 0.2, seed: int = 0
) -> np.ndarray:
    """A boolean mask of validation rows, holding about ``valid_frac`` of the patients."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    if not 0 < valid_frac < 1:
        raise ValueError(f"valid_frac must be between 0 and 1, got {valid_frac}")
    unique, inverse = np.unique(patients, return_inverse=True)
    if len(unique) < 2:  # the readers stop on this earlier; rows left out can still lead here
        raise CxrltError(
            f"The {len(patients)} images left for training and validation all belong to one "
            f"patient ({unique[0] if len(unique) else 'none'}), so no validation split can keep "
            "patients apart: give each image its patient's ID, or split by image with the data "
            "set's split_by=image parameter (e.g. --dataset cxr-lt-2026:split_by=image)."
        )
    per_patient = pd.DataFrame(labels).groupby(inverse).max().to_numpy()
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=valid_frac, random_state=seed)
    _, valid_patients = next(splitter.split(np.zeros(len(unique)), per_patient))
    is_valid_patient = np.zeros(len(unique), bool)
    is_valid_patient[valid_patients] = True
    return is_valid_patient[inverse]


HALVES = 2


def validation_halves(patients: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Cut a validation split into two halves, grouped by patient and stratified by label:
    each row's half (0 or 1).

    Everything a run chooses by a score (the epoch, tau, a calibrator, thresholds) is chosen
    on one half and reported on the other (cross-fitting), so a rare class needs positives in
    both halves wherever grouping allows. Same patients, labels and seed: same halves.
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    unique, inverse = np.unique(np.asarray(patients), return_inverse=True)
    if len(unique) < HALVES:
        raise ValueError(f"two halves need at least two patients, got {len(unique)}")
    per_patient = pd.DataFrame(np.asarray(labels)).groupby(inverse).max().to_numpy()
    splitter = MultilabelStratifiedKFold(n_splits=HALVES, shuffle=True, random_state=seed)
    half = np.zeros(len(unique), np.int64)
    for index, (_, rows) in enumerate(splitter.split(np.zeros(len(unique)), per_patient)):
        half[rows] = index
    return half[inverse]
