"""The isolation of cxrlt's pytest plugin (installed with cxrlt: generated data in a temporary
cache, plugins rebuilt for each test), and a tiny data folder in the example data set's format,
shared by its tests and the command's."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _cxrlt_cache(cxrlt_cache):
    pass


@pytest.fixture(autouse=True)
def _cxrlt_plugins(cxrlt_fresh_plugins):
    pass


@pytest.fixture
def labelled_folder(tmp_path):
    """Three images: one with two findings, one with one, one with none (files are empty:
    reading the table does not decode them)."""
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / "images" / name).touch()
    (tmp_path / "labels.csv").write_text(
        "Image Index,Patient ID,Finding Labels\n"
        "a.png,p1,Effusion|Cardiomegaly\n"
        "b.png,p1,Effusion\n"
        "c.png,p2,No Finding\n"
    )
    return tmp_path
