"""The plugin's data set: a label file in its own format, read into cxrlt's table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlt import (
    ID_COLUMN,
    LINE_COLUMN,
    PATH_COLUMN,
    PATIENT_COLUMN,
    CxrltError,
    LabelledImages,
    locate_images,
    read_csv,
)

IMAGE, PATIENT, FINDINGS = "Image Index", "Patient ID", "Finding Labels"
NO_FINDING = "No Finding"


def my_dataset(
    *, path: str | None = None, csv: str = "labels.csv", images: str = "images"
) -> LabelledImages:
    """Images labelled in one column, as ChestX-ray14 does: ``csv`` in the ``--data`` folder
    has ``Image Index`` (a file under ``images``), ``Patient ID`` and ``Finding Labels`` (names
    joined by ``|``, ``No Finding`` for none). The classes are the findings named.
    """
    if path is None:
        raise CxrltError(
            f"--dataset my-dataset needs --data FOLDER: the folder that holds {csv} and {images}/."
        )
    folder = Path(path)
    table = read_csv(
        folder / csv, text_columns=[IMAGE, PATIENT], required=[IMAGE, PATIENT, FINDINGS]
    )
    findings = [
        {name.strip() for name in text.split("|")} - {NO_FINDING} for text in table.frame[FINDINGS]
    ]
    classes = tuple(sorted(set().union(*findings)))
    paths, problems = locate_images(table.frame[IMAGE], folder / images)
    frame = pd.DataFrame(
        {
            ID_COLUMN: table.frame[IMAGE],
            PATIENT_COLUMN: table.frame[PATIENT],
            PATH_COLUMN: paths,
            LINE_COLUMN: table.lines,
            **{name: [int(name in found) for found in findings] for name in classes},
        }
    )
    return LabelledImages(
        "my-dataset", classes, frame, source=str(folder / csv), problems=tuple(problems)
    )
