"""Built-in data sets, each with the challenge files its test images can be written as."""

from cxrlt.hookspecs import hookimpl
from cxrlt.registry import SubmissionFormat

_LABELS = "cxrlt.data.labels"
# The 2026 header is stated by the organisers (shared/domain.md, section 1).
_CXR_LT_2026_ID = "ImageID"
# Assumed: domain.md names the MIMIC-CXR id columns of 2023/2024 but not the submission header;
# `dicom_id` is the column that identifies one image (a study holds several), so it keys a row.
_MIMIC_ID = "dicom_id"
_MIMIC_NOTE = (
    f"Id column {_MIMIC_ID!r} is assumed (the MIMIC-CXR image id); check it against the "
    "organisers' sample submission."
)

CXR_LT_2026 = (
    SubmissionFormat(
        "cxr-lt-2026",
        _CXR_LT_2026_ID,
        f"{_LABELS}:CXR_LT_2026_CLASSES",
        "Task 1: 30 known classes.",
    ),
    SubmissionFormat(
        "cxr-lt-2026-task2",
        _CXR_LT_2026_ID,
        f"{_LABELS}:CXR_LT_2026_TASK2_CLASSES",
        "Task 2: zero-shot on 6 unseen classes.",
    ),
)
CXR_LT_2024 = (
    SubmissionFormat(
        "cxr-lt-2024",
        _MIMIC_ID,
        f"{_LABELS}:CXR_LT_2024_CLASSES",
        f"Task 1: 40 classes. {_MIMIC_NOTE}",
    ),
    SubmissionFormat(
        "cxr-lt-2024-gold",
        _MIMIC_ID,
        f"{_LABELS}:CXR_LT_2024_GOLD_CLASSES",
        f"Task 2: 26-class gold-standard subset. {_MIMIC_NOTE}",
    ),
)
CXR_LT_2023 = (
    SubmissionFormat(
        "cxr-lt-2023", _MIMIC_ID, f"{_LABELS}:CXR_LT_2023_CLASSES", f"26 classes. {_MIMIC_NOTE}"
    ),
)


@hookimpl
def register_datasets(register):
    register(
        "synthetic",
        "cxrlt.data.embedded:synthetic_dataset",
        summary="Embedded synthetic long-tailed chest X-rays in the CXR-LT 2026 format; "
        "generated on first use, then cached.",
        aliases=("embedded",),
        submissions=CXR_LT_2026,  # written like CXR-LT 2026, whose classes it has
        trains_from_scratch=True,  # so the first run works offline, with no weights to fetch
    )
    register(
        "cxr-lt-2026",
        "cxrlt.data.challenges:cxr_lt_2026",
        summary="CXR-LT 2026 Task 1 (PadChest PNGs, 30 labels), removal list applied, test CSV "
        "kept for prediction.",
        aliases=("cxrlt26",),
        submissions=CXR_LT_2026,
    )
    register(
        "cxr-lt-2024",
        "cxrlt.data.challenges:cxr_lt_2024",
        summary="CXR-LT 2024 (MIMIC-CXR-JPG, 40 labels; subset=gold for the 26-class task).",
        submissions=CXR_LT_2024,
    )
    register(
        "cxr-lt-2023",
        "cxrlt.data.challenges:cxr_lt_2023",
        summary="CXR-LT 2023 (MIMIC-CXR-JPG, 26 labels).",
        submissions=CXR_LT_2023,
    )
    register(
        "csv",
        "cxrlt.data.challenges:labelled_csv",
        summary="Any labelled image set: a CSV with an image path column and 0/1 label columns.",
    )
