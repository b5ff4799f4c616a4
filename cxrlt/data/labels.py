"""Label lists of the CXR-LT challenges, in the official column order and spelling.

Submissions are scored by column name, so these tuples are the single source of truth for
every reader and writer (see ``shared/domain.md`` section 1).
"""

from __future__ import annotations

import numpy as np

CXR_LT_2026_CLASSES: tuple[str, ...] = (
    "Normal",
    "aortic elongation",
    "cardiomegaly",
    "pleural effusion",
    "Nodule",
    "atelectasis",
    "pleural thickening",
    "aortic atheromatosis",
    "Support Devices",
    "alveolar pattern",
    "fracture",
    "Hernia",
    "Emphysema",
    "azygos lobe",
    "Hydropneumothorax",
    "Kyphosis",
    "Mass",
    "Pneumothorax",
    "Subcutaneous Emphysema",
    "pneumoperitoneo",
    "vascular hilar enlargement",
    "vertebral degenerative changes",
    "hyperinflated lung",
    "interstitial pattern",
    "central venous catheter",
    "hypoexpansion",
    "bronchiectasis",
    "hemidiaphragm elevation",
    "sternotomy",
    "calcified densities",
)

# Positives per class in a 90% patient-grouped training split of 128,815 images.
CXR_LT_2026_TRAIN_COUNTS: tuple[int, ...] = (
    43585, 8856, 11537, 13277, 8248, 7129, 3968, 1508, 8996, 7161,
    3549, 1719, 1323, 349, 45, 3214, 307, 455, 181, 56,
    4544, 4591, 5439, 7197, 5009, 3216, 2068, 2754, 2387, 875,
)  # fmt: skip
CXR_LT_2026_TRAIN_IMAGES = 128_815

CXR_LT_2026_TASK2_CLASSES: tuple[str, ...] = (
    "Scoliosis",
    "Osteopenia",
    "Bulla",
    "Infarction",
    "Adenopathy",
    "goiter",
)

CXR_LT_2026_META_COLUMNS: tuple[str, ...] = ("ImageID", "StudyDate_DICOM", "PatientID")

CXR_LT_2023_CLASSES: tuple[str, ...] = (
    "Atelectasis", "Calcification of the Aorta", "Cardiomegaly", "Consolidation", "Edema",
    "Emphysema", "Enlarged Cardiomediastinum", "Fibrosis", "Fracture", "Hernia", "Infiltration",
    "Lung Lesion", "Lung Opacity", "Mass", "No Finding", "Nodule", "Pleural Effusion",
    "Pleural Other", "Pleural Thickening", "Pneumomediastinum", "Pneumonia", "Pneumoperitoneum",
    "Pneumothorax", "Subcutaneous Emphysema", "Support Devices", "Tortuous Aorta",
)  # fmt: skip

CXR_LT_2024_CLASSES: tuple[str, ...] = (
    "Adenopathy", "Atelectasis", "Azygos Lobe", "Calcification of the Aorta", "Cardiomegaly",
    "Clavicle Fracture", "Consolidation", "Edema", "Emphysema", "Enlarged Cardiomediastinum",
    "Fibrosis", "Fissure", "Fracture", "Granuloma", "Hernia", "Hydropneumothorax", "Infarction",
    "Infiltration", "Kyphosis", "Lobar Atelectasis", "Lung Lesion", "Lung Opacity", "Mass",
    "Nodule", "Normal", "Pleural Effusion", "Pleural Other", "Pleural Thickening",
    "Pneumomediastinum", "Pneumonia", "Pneumoperitoneum", "Pneumothorax", "Pulmonary Embolism",
    "Pulmonary Hypertension", "Rib Fracture", "Round(ed) Atelectasis", "Subcutaneous Emphysema",
    "Support Devices", "Tortuous Aorta", "Tuberculosis",
)  # fmt: skip

# Task 2 of 2024: the 2023 list with "Normal" in place of "No Finding".
CXR_LT_2024_GOLD_CLASSES: tuple[str, ...] = tuple(
    "Normal" if name == "No Finding" else name for name in CXR_LT_2023_CLASSES
)
MIMIC_META_COLUMNS: tuple[str, ...] = ("fpath", "subject_id", "study_id", "dicom_id")


def imbalance_ratio(labels: np.ndarray) -> float:
    """Most / least frequent class among classes with at least one positive (as reported to users).

    Pass ``labels[:, 1:]`` for the findings-only ratio that ``imbalance`` controls.
    """
    counts = np.asarray(labels).sum(axis=0)
    present = counts[counts > 0]
    return float(present.max() / present.min()) if len(present) else float("nan")
