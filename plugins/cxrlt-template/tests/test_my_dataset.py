import pytest
from cxrlt_template.dataset import my_dataset

from cxrlt import CxrltError
from cxrlt.testing import check_dataset


def test_reads_the_findings_column(labelled_folder):
    data = my_dataset(path=str(labelled_folder))
    assert data.classes == ("Cardiomegaly", "Effusion")
    assert data.labels.tolist() == [[1, 1], [0, 1], [0, 0]]
    assert data.patients.tolist() == ["p1", "p1", "p2"]
    assert data.paths[2] == (labelled_folder / "images" / "c.png").resolve()
    assert data.problems == ()


def test_a_missing_image_is_a_row_problem(labelled_folder):
    (labelled_folder / "images" / "b.png").unlink()
    [problem] = my_dataset(path=str(labelled_folder)).problems
    assert problem.rows == (1,)


def test_without_data_says_what_to_give():
    with pytest.raises(CxrltError, match="needs --data FOLDER"):
        my_dataset()


def test_keeps_the_dataset_contract(labelled_folder):
    """A LabelledImages with ImageID, PatientID, path, 0/1 labels and unique IDs."""
    check_dataset("my-dataset", path=str(labelled_folder))
