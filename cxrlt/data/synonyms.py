"""Class names matched across data sets: a run trained on one label list, scored on another.

Names are first normalised (case, spaces, underscores and hyphens: ``Pleural_Thickening`` is
``pleural thickening``), then mapped through :data:`SYNONYMS`, the one table of names that
differ in more than spelling but mean the same finding. Only true synonyms are listed, each
with its source; findings that overlap without being the same class are listed in
:data:`NOT_SYNONYMS` with the reason, and are never matched. Label lists covered: CXR-LT 2026
(PadChest), CXR-LT 2023 and 2024 (MIMIC-CXR), NIH ChestX-ray14 and CheXpert.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from cxrlt.errors import CxrltError

# canonical name -> (other names of the same finding, source)
SYNONYMS: dict[str, tuple[tuple[str, ...], str]] = {
    "Pleural Effusion": (
        ("Effusion",),
        "NIH ChestX-ray14 (Wang et al., CVPR 2017) calls pleural effusion 'Effusion'; "
        "CheXpert (Irvin et al., AAAI 2019), MIMIC-CXR and PadChest 'pleural effusion'",
    ),
    "Pneumoperitoneum": (
        ("pneumoperitoneo",),
        "PadChest (Bustos et al., Med. Image Anal. 2020) keeps the Spanish term, and CXR-LT "
        "2026 inherits it; CXR-LT 2023/2024 (MIMIC-CXR) write 'Pneumoperitoneum'",
    ),
    "Normal": (
        ("No Finding",),
        "CXR-LT 2024's gold-standard task is the 2023 list with 'Normal' in place of "
        "'No Finding' (the organisers' renaming); NIH and CheXpert say 'No Finding'",
    ),
    "Round(ed) Atelectasis": (
        ("Round Atelectasis", "Rounded Atelectasis"),
        "CXR-LT 2024 writes both names of the one finding in a single label; PadChest's "
        "full label list says 'round atelectasis'",
    ),
}

# pairs that are never matched -> why they are not the same class
NOT_SYNONYMS: dict[tuple[str, str], str] = {
    ("Calcification of the Aorta", "aortic atheromatosis"): "calcium seen in the aortic wall "
    "versus the atheromatous disease it suggests: related, not one definition",
    ("Tortuous Aorta", "aortic elongation"): "related descriptions of the aorta's course; "
    "PadChest also splits elongation into ascending, descending and supra-aortic",
    ("Support Devices", "central venous catheter"): "one kind of device versus every device",
    ("Fracture", "Rib Fracture"): "a subtype versus the whole class",
    ("Atelectasis", "Lobar Atelectasis"): "a subtype versus the whole class",
    ("Lung Opacity", "alveolar pattern"): "any opacity versus one pattern of it",
    ("Infiltration", "interstitial pattern"): "torchxrayvision folds PadChest's interstitial "
    "and alveolar patterns into NIH's Infiltration to train across sets; the labels differ",
    ("Emphysema", "hyperinflated lung"): "a disease versus a sign that has other causes",
}


def normalise(name: str) -> str:
    """Case, surrounding space, and runs of spaces, underscores and hyphens made uniform."""
    return " ".join(re.split(r"[\s_\-]+", name.strip().casefold())).strip()


def _index() -> dict[str, str]:
    index = {}
    for canonical, (others, _) in SYNONYMS.items():
        for name in (canonical, *others):
            index[normalise(name)] = normalise(canonical)
    return index


_INDEX = _index()


def finding(name: str) -> str:
    """The finding a class name stands for: its normalised canonical name."""
    key = normalise(name)
    return _INDEX.get(key, key)


@dataclass(frozen=True)
class ClassMatch:
    """The run's classes paired with the data set's, and those of each side left unpaired."""

    pairs: tuple[tuple[str, str], ...]  # (run class, data set class), in the run's order
    run_only: tuple[str, ...]
    data_only: tuple[str, ...]

    @property
    def run_classes(self) -> list[str]:
        return [run for run, _ in self.pairs]

    @property
    def data_classes(self) -> list[str]:
        return [data for _, data in self.pairs]

    def table(self) -> pd.DataFrame:
        """One row per class of either side: how it was matched, and why some were not."""
        rows = [(run, data, _how(run, data), "") for run, data in self.pairs]
        rows += [(run, "", "run only", _why_not(run, self.data_only)) for run in self.run_only]
        rows += [
            ("", data, "data set only", _why_not(data, self.run_only)) for data in self.data_only
        ]
        return pd.DataFrame(rows, columns=["run_class", "dataset_class", "match", "note"])


def _how(run: str, data: str) -> str:
    if run == data:
        return "same name"
    return "spelling" if normalise(run) == normalise(data) else "synonym"


def _why_not(name: str, others: Sequence[str]) -> str:
    """The documented reason, if any, why ``name`` is not matched with one of ``others``."""
    reasons = [
        f"not {other!r}: {why}"
        for other in others
        for pair, why in NOT_SYNONYMS.items()
        if {finding(name), finding(other)} == {finding(pair[0]), finding(pair[1])}
    ]
    return "; ".join(reasons)


def _by_finding(classes: Sequence[str], side: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in classes:
        key = finding(name)
        if key in found:
            raise CxrltError(
                f"{side} has two classes for one finding, {found[key]!r} and {name!r} (see "
                "`cxrlt evaluate --synonyms`): leave one out, e.g. with the data set's "
                "ignore_columns parameter."
            )
        found[key] = name
    return found


def match_classes(run_classes: Sequence[str], data_classes: Sequence[str]) -> ClassMatch:
    """Pair classes that name the same finding; two names of one finding on a side stop it."""
    runs = _by_finding(run_classes, "The run")
    data = _by_finding(data_classes, "The data set")
    return ClassMatch(
        pairs=tuple((name, data[key]) for key, name in runs.items() if key in data),
        run_only=tuple(name for key, name in runs.items() if key not in data),
        data_only=tuple(name for key, name in data.items() if key not in runs),
    )


def synonyms_markdown() -> str:
    """:data:`SYNONYMS` and :data:`NOT_SYNONYMS` as the markdown tables the documentation
    shows (docs/reference.py)."""
    lines = ["| finding | also matched | source |", "|---|---|---|"]
    lines += [
        f"| {name} | {', '.join(others)} | {source} |"
        for name, (others, source) in SYNONYMS.items()
    ]
    lines += ["", "| never matched | with | why |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {why} |" for (a, b), why in NOT_SYNONYMS.items()]
    return "\n".join(lines) + "\n"
