"""Merging a study's views: the merge itself, the step's checks, the two-view embedded data and
the study columns read from label files."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cxrlt.data.embedded import synthetic_dataset
from cxrlt.data.labels import CXR_LT_2026_CLASSES
from cxrlt.data.table import (
    PROJECTION_COLUMN,
    STUDY_COLUMN,
    ViewColumns,
    normalised_projection,
    read_labelled_csv,
)
from cxrlt.errors import CxrltError
from cxrlt.post.study_views import StudyViews, apply_to_predictions, merge_views

LOGITS = np.array([[1.0, -2.0], [3.0, 0.0], [5.0, 4.0], [-1.0, 2.0]], np.float32)
STUDIES = np.array(["a", "a", "", "b"])  # the blank one stands alone


def test_mean_and_max_merge_the_rows_of_one_study():
    mean = merge_views(LOGITS, STUDIES, method="mean")
    np.testing.assert_allclose(mean, [[2, -1], [2, -1], [5, 4], [-1, 2]])
    top = merge_views(LOGITS, STUDIES, method="max")
    np.testing.assert_allclose(top, [[3, 0], [3, 0], [5, 4], [-1, 2]])
    assert mean.dtype == np.float32


def test_weighted_mean_weighs_each_row():
    merged = merge_views(LOGITS, STUDIES, method="weighted", weights=np.array([1, 0.5, 1, 1]))
    expected = (1.0 * LOGITS[0] + 0.5 * LOGITS[1]) / 1.5
    np.testing.assert_allclose(merged[:2], [expected, expected], rtol=1e-6)
    np.testing.assert_allclose(merged[2:], LOGITS[2:])


def test_step_weights_views_by_projection_and_leaves_tables_without_studies():
    images = pd.DataFrame(
        {STUDY_COLUMN: ["s", "s", "t", "t"], PROJECTION_COLUMN: ["PA", "LATERAL", "AP", "OTHER"]}
    )
    merged = StudyViews("weighted", weights={"PA": 3, "LATERAL": 1}).on_predictions(LOGITS, images)
    np.testing.assert_allclose(merged[0], (3 * LOGITS[0] + LOGITS[1]) / 4, rtol=1e-6)
    np.testing.assert_allclose(merged[2], (LOGITS[2] + LOGITS[3]) / 2)  # unnamed weigh 1
    unchanged = StudyViews().on_predictions(LOGITS, pd.DataFrame({"ImageID": list("wxyz")}))
    np.testing.assert_array_equal(unchanged, LOGITS)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "median"}, "not one of mean, max, weighted"),
        ({"weights": {"PA": 1.0}}, "weights apply to method=weighted"),
        ({"method": "weighted", "weights": {"LATERAL": 0}}, "positive number"),
    ],
)
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(CxrltError, match=message):
        StudyViews(**params)


def test_only_steps_that_act_on_predictions_change_them():
    images = pd.DataFrame({STUDY_COLUMN: STUDIES})
    merged = apply_to_predictions("tta,study-views:method=max", LOGITS, images)
    np.testing.assert_allclose(merged, merge_views(LOGITS, STUDIES, method="max"))
    np.testing.assert_array_equal(apply_to_predictions("tta", LOGITS, images), LOGITS)


@pytest.fixture(scope="module")
def two_views(tmp_path_factory):
    folder = tmp_path_factory.mktemp("views") / "data"
    return synthetic_dataset(path=str(folder), n_images=41, size=16, n_test=6, views=2, seed=4)


def test_two_view_studies_share_labels_and_name_their_projections(two_views):
    frame = two_views.frame
    sizes = frame.groupby(STUDY_COLUMN).size()
    assert sorted(sizes.unique()) == [1, 2] and (sizes == 1).sum() == 1  # 41 images
    first = frame.groupby(STUDY_COLUMN).nth(0)
    assert set(first[PROJECTION_COLUMN]) == {"PA", "AP"}
    assert set(frame.groupby(STUDY_COLUMN).nth(1)[PROJECTION_COLUMN]) == {"LATERAL"}
    labels = frame.groupby(STUDY_COLUMN)[list(CXR_LT_2026_CLASSES)].nunique()
    assert (labels == 1).all().all()
    assert frame.groupby(STUDY_COLUMN)["PatientID"].nunique().max() == 1
    test = two_views.test
    assert test[STUDY_COLUMN].nunique() == 3 and set(test[PROJECTION_COLUMN]) >= {"LATERAL"}
    assert not set(test[STUDY_COLUMN]) & set(frame[STUDY_COLUMN])


def test_views_of_a_study_are_different_images(two_views):
    paths = two_views.frame.groupby(STUDY_COLUMN)["path"].apply(list)
    pair = next(p for p in paths if len(p) == 2)
    assert open(pair[0], "rb").read() != open(pair[1], "rb").read()


def test_the_default_data_set_has_no_studies(tmp_path):
    data = synthetic_dataset(path=str(tmp_path / "one"), n_images=12, size=16, n_test=2)
    assert data.studies is None and STUDY_COLUMN not in data.test
    assert "StudyID" not in (tmp_path / "one" / "train.csv").read_text().splitlines()[0]
    with pytest.raises(CxrltError, match="'views'"):
        synthetic_dataset(path=str(tmp_path / "three"), n_images=12, size=16, views=3)


def test_check_refuses_data_without_studies_or_projections(tmp_path, two_views):
    plain = synthetic_dataset(path=str(tmp_path / "plain"), n_images=12, size=16)
    with pytest.raises(CxrltError, match="name no study.*synthetic:views=2"):
        StudyViews().check(SimpleNamespace(dls=SimpleNamespace(data=plain)))
    StudyViews("weighted").check(SimpleNamespace(dls=SimpleNamespace(data=two_views)))
    unprojected = two_views.frame.drop(columns=PROJECTION_COLUMN)
    learn = SimpleNamespace(dls=SimpleNamespace(data=_replace_frame(two_views, unprojected)))
    StudyViews("max").check(learn)
    with pytest.raises(CxrltError, match="name no projection.*method=mean"):
        StudyViews("weighted").check(learn)


def _replace_frame(data, frame):
    from dataclasses import replace

    return replace(data, frame=frame)


def test_a_study_is_the_patient_and_date_when_no_study_column_is_given(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, (patient, date, view) in enumerate(
        [
            ("p1", "20100101", "PA"),
            ("p1", "20100101", "L"),
            ("p1", "20110101", "AP_horizontal"),
            ("p2", "20100101", "PA"),
        ]
    ):
        (images / f"{i}.png").write_bytes(b"")
        rows.append({"ImageID": f"{i}.png", "PatientID": patient, "Date": date, "View": view})
    frame = pd.DataFrame(rows)
    frame[["cardiomegaly", "Nodule"]] = [[1, 0], [1, 0], [0, 1], [0, 0]]
    frame.to_csv(tmp_path / "labels.csv", index=False)
    views = ViewColumns(study="StudyID", date="Date", projection="View")
    data = read_labelled_csv(
        tmp_path / "labels.csv", images, ["cardiomegaly", "Nodule"], name="csv", views=views
    )
    assert list(data.studies) == ["p1/20100101", "p1/20100101", "p1/20110101", "p2/20100101"]
    assert list(data.frame[PROJECTION_COLUMN]) == ["PA", "LATERAL", "AP", "PA"]


@pytest.mark.parametrize(
    ("text", "projection"),
    [("PA", "PA"), ("ap_horizontal", "AP"), ("L", "LATERAL"), ("LL", "LATERAL"), (" ", "")],
)
def test_projections_are_normalised(text, projection):
    assert normalised_projection(text) == projection
