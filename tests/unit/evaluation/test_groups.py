"""Head / medium / tail groups: the documented cuts, edges and means, on hand-made counts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cxrlt.errors import CxrltError
from cxrlt.evaluation.groups import ClassGroups, frequency_groups, group_means


def names(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


def sizes(groups: ClassGroups) -> tuple[int, ...]:
    return tuple(len(groups.members(g)) for g in ("head", "medium", "tail"))


def test_thirds_of_30_classes_are_10_10_10_by_frequency():
    counts = list(range(1, 31))  # c29 is the most frequent
    groups = frequency_groups(counts, names(30))
    assert sizes(groups) == (10, 10, 10)
    assert groups.members("head") == [f"c{i}" for i in range(20, 30)]
    assert groups.members("tail") == [f"c{i}" for i in range(10)]
    assert list(groups.group) == names(30)  # class order kept
    assert "head 21–30 (10 classes)" in groups.description
    assert "tail 1–10 (10 classes)" in groups.description
    assert groups.without_positives == [] and "without training positives" not in groups.description


@pytest.mark.parametrize("n, expected", [(7, (3, 2, 2)), (8, (3, 3, 2)), (3, (1, 1, 1))])
def test_thirds_give_the_remainder_to_the_groups_nearest_the_head(n, expected):
    assert sizes(frequency_groups(np.arange(1, n + 1)[::-1], names(n))) == expected


def test_thirds_break_ties_by_class_order():
    groups = frequency_groups([5, 9, 5, 5, 9, 5], names(6))
    assert groups.members("head") == ["c1", "c4"]
    assert groups.members("medium") == ["c0", "c2"]  # first two of the tied 5s
    assert groups.members("tail") == ["c3", "c5"]


def test_bounds_edges_medium_is_inclusive():
    counts = [1001, 1000, 100, 99, 1, 5000]
    groups = frequency_groups(counts, names(6), method="bounds")
    assert groups.group == {
        "c0": "head",
        "c1": "medium",
        "c2": "medium",
        "c3": "tail",
        "c4": "tail",
        "c5": "head",
    }
    assert groups.description == (
        "count bounds: head > 1000 (2 classes); medium 100–1000 (2 classes); "
        "tail < 100 (2 classes) training positives"
    )


def test_bounds_scale_with_the_data():
    groups = frequency_groups([11, 10, 2, 1], names(4), method="bounds", bounds=(2, 10))
    assert groups.group == {"c0": "head", "c1": "medium", "c2": "medium", "c3": "tail"}


@pytest.mark.parametrize(
    "method, bounds",
    [("thirds", (100, 1000)), ("bounds", (0, 0)), ("bounds", (0, 10)), ("bounds", (2, 10))],
)
def test_classes_without_training_positives_are_their_own_group_under_every_rule(method, bounds):
    counts = [0, 40, 0, 12, 3, 1, 0]  # with 0 <= low, a 0 would be medium or head by the bounds
    groups = frequency_groups(
        counts, ["Mass", "a", "Nodule", "b", "c", "d", "Hernia"], method, bounds
    )
    assert groups.without_positives == ["Mass", "Nodule", "Hernia"]
    assert groups.members("none") == ["Mass", "Nodule", "Hernia"]
    assert sum(sizes(groups)) == 4  # the classes with positives, and only they
    assert "none: 3 classes without training positives" in groups.description
    assert "(Mass, Nodule, Hernia)" in groups.description


def test_thirds_cut_only_the_classes_with_training_positives():
    groups = frequency_groups([0, 0, 9, 0, 5, 0, 1], names(7))
    assert groups.members("head") == ["c2"]
    assert groups.members("medium") == ["c4"]
    assert groups.members("tail") == ["c6"]  # not c0, c1, c3 or c5, which never had a positive
    assert "tail 1 (1 class)" in groups.description


def test_all_zero_counts_leave_head_medium_and_tail_empty():
    groups = frequency_groups([0, 0, 0], names(3))
    assert sizes(groups) == (0, 0, 0) and groups.without_positives == names(3)
    assert "head — (0 classes)" in groups.description


def test_group_means_leave_out_the_classes_without_training_positives():
    groups = frequency_groups([0, 9, 5, 1], names(4))
    per_class = pd.DataFrame({"AP": [0.0, 0.9, 0.6, 0.3]}, index=names(4))
    means = group_means(per_class, groups)
    assert means == pytest.approx({"head": 0.9, "medium": 0.6, "tail": 0.3})
    assert set(means) == {"head", "medium", "tail"}


def test_group_means_equal_hand_means_and_skip_nan():
    groups = frequency_groups([9, 8, 7, 6, 5, 4, 3, 2, 1], names(9))
    per_class = pd.DataFrame(
        {"AP": [0.9, 0.6, np.nan, 0.4, 0.2, 0.3, np.nan, np.nan, np.nan], "AUC": np.arange(9.0)},
        index=pd.Index(names(9), name="class"),
    )
    means = group_means(per_class, groups)
    assert means["head"] == pytest.approx(0.75)
    assert means["medium"] == pytest.approx(0.3)
    assert math.isnan(means["tail"])  # no scored class
    assert group_means(per_class, groups, "AUC") == pytest.approx(
        {"head": 1.0, "medium": 4.0, "tail": 7.0}
    )


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"method": "quartiles"}, ["method", "thirds", "bounds"]),
        ({"method": "bounds", "bounds": (1000, 100)}, ["bounds", "low <= high"]),
        ({"method": "bounds", "bounds": (-1, 100)}, ["bounds", "0 <= low"]),
        ({"method": "bounds", "bounds": (100,)}, ["bounds", "(low, high)"]),
        ({"method": "bounds", "bounds": (1.5, 100)}, ["bounds", "whole numbers"]),
    ],
)
def test_bad_method_or_bounds_name_the_parameter_and_the_accepted_values(kwargs, words):
    with pytest.raises(CxrltError) as error:
        frequency_groups([3, 2, 1], names(3), **kwargs)
    assert all(word in str(error.value) for word in words)


@pytest.mark.parametrize(
    "counts, classes, words",
    [
        ([3, 2], names(3), "one count per class"),
        ([3, -1, 2], names(3), "0 or more"),
        ([3.5, 1, 2], names(3), "whole numbers"),
        ([3, 2, 1], ["a", "a", "b"], "distinct"),
    ],
)
def test_bad_counts_or_classes_are_refused(counts, classes, words):
    with pytest.raises(CxrltError, match=words):
        frequency_groups(counts, classes)


def test_group_means_refuse_unknown_column_or_missing_class():
    groups = frequency_groups([3, 2, 1], names(3))
    table = pd.DataFrame({"AP": [0.1, 0.2]}, index=["c0", "c1"])
    with pytest.raises(CxrltError, match="mAP"):
        group_means(table, groups, "mAP")
    with pytest.raises(CxrltError, match="c2"):
        group_means(table, groups)
