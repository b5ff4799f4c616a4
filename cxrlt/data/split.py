"""Validation splits grouped by patient: no patient's images on both sides."""

from __future__ import annotations

import numpy as np


def patient_split(patients: np.ndarray, *, valid_frac: float = 0.2, seed: int = 0) -> np.ndarray:
    """A boolean mask of validation rows, holding about ``valid_frac`` of the images."""
    if not 0 < valid_frac < 1:
        raise ValueError(f"valid_frac must be between 0 and 1, got {valid_frac}")
    unique, inverse, counts = np.unique(patients, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    taken = np.cumsum(counts[order]) <= valid_frac * len(patients)
    valid_patients = np.zeros(len(unique), bool)
    valid_patients[order[taken]] = True
    return valid_patients[inverse]
