"""Built-in data sets."""

from cxrlt.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    register(
        "synthetic",
        "cxrlt.data.embedded:synthetic_dataset",
        summary="Embedded synthetic long-tailed chest X-rays in the CXR-LT 2026 format; "
        "generated on first use, then cached.",
        aliases=("embedded",),
    )
    register(
        "cxr-lt-2026",
        "cxrlt.data.challenges:cxr_lt_2026",
        summary="CXR-LT 2026 Task 1 (PadChest PNGs, 30 labels), removal list applied, test CSV "
        "kept for prediction.",
        aliases=("cxrlt26",),
    )
    register(
        "cxr-lt-2024",
        "cxrlt.data.challenges:cxr_lt_2024",
        summary="CXR-LT 2024 (MIMIC-CXR-JPG, 40 labels; subset=gold for the 26-class task).",
    )
    register(
        "cxr-lt-2023",
        "cxrlt.data.challenges:cxr_lt_2023",
        summary="CXR-LT 2023 (MIMIC-CXR-JPG, 26 labels).",
    )
    register(
        "csv",
        "cxrlt.data.challenges:labelled_csv",
        summary="Any labelled image set: a CSV with an image path column and 0/1 label columns.",
    )
