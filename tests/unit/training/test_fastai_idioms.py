"""fastai idioms on cxrlt's loaders and Learner, and cxr_learner on DataLoaders cxrlt did not
build (a DataBlock, wrapped PyTorch loaders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from fastai.data.block import ColReader, DataBlock, MultiCategoryBlock, RandomSplitter
from fastai.data.core import DataLoaders
from fastai.vision.core import PILImageBW
from fastai.vision.data import ImageBlock
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from cxrlt import (
    CxrltError,
    Spec,
    cxr_dataloaders,
    cxr_learner,
    load_learner,
    resolve,
    training_label_counts,
)
from cxrlt.data.images import read_image
from cxrlt.data.labels import CXR_LT_2026_CLASSES
from cxrlt.pytest_plugin import TINY_DATA
from tests.unit.data.test_images import smooth, write_dicom

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[3]
ARCH = "resnet18:pretrained=False"


def trained_prior(learn) -> list[float]:
    """The class prior a logit-adjusted loss was built with: counts / n_train."""
    return torch.sigmoid(learn.loss_func.offsets).tolist()


def names(vocab, row) -> list[str]:
    return [name for name, value in zip(vocab, row.tolist(), strict=True) if value]


@pytest.fixture(scope="module")
def dls():
    return cxr_dataloaders(TINY_DATA, size=32, bs=16)


@pytest.fixture(scope="module")
def learn(dls):
    """LDAM with s=2: its probabilities are sigmoid(2z), not fastai's default sigmoid(z)."""
    learn = cxr_learner(dls, ARCH, loss="ldam:s=2")
    learn.fit(1, 1e-3)
    return learn


@pytest.fixture(scope="module")
def new_images(tmp_path_factory) -> list[Path]:
    """A 16-bit PNG, a colour JPEG and a DICOM, none of them square."""
    folder = tmp_path_factory.mktemp("new")
    Image.fromarray(smooth(60, 40, 4096).astype(np.uint16)).save(folder / "deep.png")
    colour = np.stack([smooth(50, 70, 256, seed=s) for s in range(3)], -1).astype(np.uint8)
    Image.fromarray(colour).save(folder / "colour.jpg")
    return [
        folder / "deep.png",
        folder / "colour.jpg",
        write_dicom(folder / "x.dcm", smooth(64, 48, 4096)),
    ]


def pixels(batch) -> np.ndarray:
    """A loader batch's images back as (N, H, W) uint8."""
    return (batch[0][:, 0] * 255).round().byte().numpy()


def test_one_batch_vocab_and_show_batch_titles_images_with_their_label_names(dls):
    images, targets = dls.one_batch()
    assert images.shape == (16, 1, 32, 32) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert tuple(dls.vocab) == tuple(dls.train.vocab) == CXR_LT_2026_CLASSES
    axes = dls.show_batch(b=(images, targets), max_n=4)
    assert [ax.get_title() for ax in axes] == [";".join(names(dls.vocab, t)) for t in targets[:4]]
    shown = axes[0].images[0]
    assert shown.get_array().shape == (32, 32) and shown.get_cmap().name == "gray"
    plt.close("all")


def test_test_dl_decodes_files_as_training_did(dls):
    """The training images' own files come back as the cache holds them."""
    cached = dls.train.dataset.images
    paths = dls.data.paths[:5]
    assert (pixels(dls.test_dl(paths).one_batch()) == cached[:5]).all()


def test_test_dl_reads_png_jpeg_and_dicom_with_the_loaders_size_and_letterbox(new_images):
    boxed = cxr_dataloaders(TINY_DATA, size=32, bs=16, letterbox=True)
    batch = boxed.test_dl(new_images).one_batch()
    assert len(batch) == 1  # no labels
    expected = [read_image(path, 32, letterbox=True) for path in new_images]
    assert (pixels(batch) == np.stack(expected)).all()
    assert (pixels(batch)[0][:, :4] == 0).all()  # a tall image: black bands left and right


def test_test_dl_takes_uint8_arrays_at_the_training_size_only(dls):
    image = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    assert (pixels(dls.test_dl([image, image[::-1]]).one_batch()) == [image, image[::-1]]).all()
    with pytest.raises(CxrltError, match=r"uint8 of shape \(32, 32\).*image file"):
        dls.test_dl([image.astype(np.float32)])
    with pytest.raises(CxrltError, match=r"shape \(16, 16\)"):
        dls.test_dl([image[:16, :16]])
    with pytest.raises(CxrltError, match=r"item 0 is a Image; give image files"):
        dls.test_dl([Image.fromarray(image)])


def test_c_counts_the_outputs(dls):
    assert dls.c == len(dls.vocab) == 30


def test_new_empty_keeps_classes_and_decoding_without_images(dls):
    empty = dls.new_empty()
    assert len(empty.train.dataset) == len(empty.valid.dataset) == 0 and empty.n_train == 0
    assert empty.vocab == dls.vocab and (empty.size, empty.letterbox) == (32, False)
    paths = dls.data.paths[:2]
    assert (
        pixels(empty.test_dl(paths).one_batch()) == pixels(dls.test_dl(paths).one_batch())
    ).all()


@pytest.mark.slow
def test_predict_gives_names_decisions_and_the_losses_probabilities(dls, learn):
    path = dls.data.paths[0]
    labels, decided, probs = learn.predict(path)
    image = torch.from_numpy(read_image(path, 32)).float().div(255)[None, None]
    with torch.no_grad():
        logits = learn.model.eval()(image)[0]
    assert torch.allclose(probs, torch.sigmoid(2 * logits), atol=1e-6)
    assert not torch.allclose(probs, torch.sigmoid(logits), atol=1e-3)
    assert torch.equal(decided, probs > 0.5)
    assert list(labels) == names(dls.vocab, decided)


@pytest.mark.slow
def test_get_preds_on_a_test_dl_matches_predict(dls, learn):
    paths = dls.data.paths[:3]
    probs, targets = learn.get_preds(dl=dls.test_dl(paths))
    assert targets is None and probs.shape == (3, len(dls.vocab))
    assert torch.allclose(probs[2], learn.predict(paths[2])[2], atol=1e-6)


@pytest.mark.slow
def test_show_results_titles_labels_over_predictions(dls, learn):
    learn.show_results(max_n=4, shuffle=False)
    axes = [ax for ax in plt.gcf().axes if ax.images]
    targets = dls.valid.dataset.targets[:4]
    firsts = [ax.get_title().split("\n")[0] for ax in axes]
    assert firsts == [";".join(names(dls.vocab, t)) for t in targets]
    plt.close("all")


def run_python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_parts_may_be_names_parsed_specs_or_resolved_specs(dls):
    """A caller that resolved its specs once (as ``cxrlt run`` does) passes them on as they are."""
    dataset = resolve("datasets", TINY_DATA)
    again = cxr_dataloaders(dataset, size=32, bs=16, sampler=Spec("uniform", {}))
    assert again.specs == dls.specs
    assert again.classes == dls.classes and (again.is_valid == dls.is_valid).all()
    by_name = cxr_learner(dls, ARCH, loss="ldam:s=2", head="cosine")
    resolved = cxr_learner(
        again,
        resolve("backbones", ARCH),
        loss=Spec("ldam", {"s": 2}),
        head=resolve("heads", "cosine"),
    )
    assert resolved.specs == by_name.specs
    assert str(resolved.model) == str(by_name.model)
    with pytest.raises(CxrltError, match="'bce' is a loss, not a backbone"):
        cxr_learner(dls, resolve("losses", "bce"))


@pytest.mark.slow
def test_summary_works_with_just_import_cxrlt():
    out = run_python(
        f"""
        import cxrlt
        dls = cxrlt.cxr_dataloaders("{TINY_DATA}", size=32, bs=16)
        print(cxrlt.cxr_learner(dls, "{ARCH}").summary())
        """
    )
    assert "CXRClassifier (Input shape: 16 x 1 x 32 x 32)" in out and "Total params" in out


@pytest.mark.slow
def test_exported_learner_predicts_in_a_fresh_process_without_the_data(dls, learn, tmp_path):
    learn.export(tmp_path / "learner.pkl")
    path = dls.data.paths[0]
    empty_cache = tmp_path / "cache"
    out = run_python(
        f"""
        import json
        import cxrlt
        from fastai.learner import load_learner
        learn = cxrlt.load_learner({str(tmp_path / "learner.pkl")!r})
        labels, decided, probs = learn.predict({str(path)!r})
        n_images = len(learn.dls.train.dataset) + len(learn.dls.valid.dataset)
        plain = load_learner({str(tmp_path / "learner.pkl")!r}).predict({str(path)!r})[2]
        assert (plain == probs).all()  # fastai's own load_learner works too
        print(json.dumps([list(labels), probs.tolist(), n_images]))
        """,
        CXRLT_CACHE_DIR=str(empty_cache),
    )
    labels, probs, n_images = json.loads(out.splitlines()[-1])
    here = learn.predict(path)
    assert labels == list(here[0]) and np.allclose(probs, here[2].numpy(), atol=1e-6)
    assert n_images == 0 and not empty_cache.exists()


def test_load_learner_names_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(CxrltError, match="no such file.*learn.export"):
        load_learner(tmp_path / "export.pkl")
    (tmp_path / "notes.pkl").write_text("not a learner")
    with pytest.raises(CxrltError, match="not a Learner written by learn.export"):
        load_learner(tmp_path / "notes.pkl")


# --------------------------------------------------------- DataLoaders cxrlt did not build


@pytest.mark.slow
def test_cxr_learner_on_a_datablock_counts_the_training_split(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        rows.append((str(tmp_path / f"{i}.png"), ["a b", "b", "c", "a", "b"][i % 5]))
    frame = pd.DataFrame(rows, columns=["path", "labels"])
    block = DataBlock(
        blocks=(ImageBlock(cls=PILImageBW), MultiCategoryBlock),
        get_x=ColReader("path"),
        get_y=ColReader("labels", label_delim=" "),
        splitter=RandomSplitter(valid_pct=0.25, seed=0),
    )
    dls = block.dataloaders(frame, bs=5)
    train_labels = [set(text.split()) for text in dls.train.items["labels"]]
    expected = [sum(name in labels for labels in train_labels) for name in "abc"]
    counts, n_train = training_label_counts(dls)
    assert counts.tolist() == expected and n_train == 15
    learn = cxr_learner(dls, ARCH)
    learn.fit(1, 1e-3)
    labels, decided, probs = learn.predict(tmp_path / "0.png")
    assert probs.shape == (3,) and list(labels) == names(dls.vocab, decided)
    learn.post("tta,temp-scale,f1-per-class")  # its classes from the vocab
    assert learn.calibrator is not None and learn.threshold_policy.thresholds.shape == (3,)


def tensor_loaders(y: torch.Tensor) -> DataLoaders:
    x = torch.rand(len(y), 1, 32, 32)
    train, valid = TensorDataset(x[:16], y[:16]), TensorDataset(x[16:], y[16:])
    return DataLoaders(
        DataLoader(train, batch_size=8, shuffle=True), DataLoader(valid, batch_size=8)
    )


def test_cxr_learner_on_pytorch_loaders_asks_for_names_then_counts_the_targets():
    y = (torch.rand(20, 3) > 0.5).float()
    dls = tensor_loaders(y)
    with pytest.raises(CxrltError, match=r"dls\.classes = \["):
        cxr_learner(dls, ARCH)
    dls.classes = ["x", "y", "z"]
    counts, n_train = training_label_counts(dls)
    assert counts.tolist() == y[:16].sum(0).tolist() and n_train == 16
    learn = cxr_learner(dls, ARCH, loss="logit-adjusted")
    assert trained_prior(learn) == pytest.approx((y[:16].mean(0)).tolist())
    learn.fit(1, 1e-3)
    assert np.isfinite(learn.validate()[0])
    with pytest.raises(CxrltError, match="plain PyTorch loaders.*dl=valid_dl"):
        learn.calibrate("temp-scale")
    learn.calibrate("temp-scale", dl=dls.valid)
    assert learn.calibrator is not None
    dls.classes = ["x", "y"]
    with pytest.raises(CxrltError, match="name 2 classes but count positives for 3"):
        cxr_learner(dls, ARCH)


def test_single_label_targets_are_refused_with_the_block_to_use():
    dls = tensor_loaders(torch.randint(0, 3, (20,)))
    dls.classes = ["x", "y", "z"]
    with pytest.raises(CxrltError, match="MultiCategoryBlock"):
        cxr_learner(dls, ARCH)


class Stream(IterableDataset):
    def __iter__(self):
        for _ in range(16):
            yield torch.rand(1, 32, 32), (torch.rand(3) > 0.5).float()


def test_targets_that_cannot_be_read_need_class_counts_and_n_train():
    stream = DataLoader(Stream(), batch_size=8)
    dls = DataLoaders(stream, stream)
    dls.classes = ["x", "y", "z"]
    with pytest.raises(CxrltError, match=r"dls\.class_counts = \[\.\.\.\].*dls\.n_train = N"):
        cxr_learner(dls, ARCH)
    dls.class_counts, dls.n_train = [5, 1, 9], 16
    learn = cxr_learner(dls, ARCH, loss="logit-adjusted")
    assert trained_prior(learn) == pytest.approx([5 / 16, 1 / 16, 9 / 16])
