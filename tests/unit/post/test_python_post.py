"""Post-training, calibration and thresholds from Python: ``learn.post`` with the ``--post``
string, ``learn.calibrate`` and ``learn.thresholds``, what they keep on the learner and
through ``export``, and steps that refuse before they change anything."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import load_learner
from scipy.special import expit

from cxrlt import cxr_learner  # the public one: its Learner has .post, .calibrate, ...
from cxrlt.calibration.calibrators import LossActivation, TemperatureScaling, fit_temperature
from cxrlt.calibration.learner import calibrated_probabilities, predicted_labels
from cxrlt.calibration.thresholds import GlobalF1Threshold, PerClassF1Threshold
from cxrlt.errors import CxrltError
from cxrlt.post.tta import TTAModel


@pytest.fixture
def learn(dls, trained):
    learn = cxr_learner(dls, "resnet18", "bce", pretrained=False)
    learn.model.load_state_dict(trained)
    with learn.no_bar(), learn.no_logging():
        yield learn


def raw(learn, dl=None) -> tuple[np.ndarray, np.ndarray]:
    logits, targets = learn.get_preds(dl=dl, act=lambda z: z)
    return logits.numpy().astype(np.float64), targets.numpy()


def test_post_takes_the_cli_string_and_fits_on_validation(learn):
    learn.post("tta:scales=[0.9],temp-scale,f1-per-class")
    assert isinstance(learn.model, TTAModel)
    assert [step.entry.name for step in learn.post_steps] == ["tta"]
    assert str(learn.specs["calibrator"].spec) == "temp-scale"
    assert learn.specs["thresholds"].entry.name == "f1-per-class"
    logits, targets = raw(learn)  # the TTA model's, as the calibrator saw them
    temperature = fit_temperature(logits, targets)
    assert learn.calibrator.state()["temperature"] == pytest.approx(temperature, rel=1e-6)
    probs = expit(logits / temperature)
    np.testing.assert_allclose(calibrated_probabilities(learn, logits), probs, rtol=1e-5)
    expected = PerClassF1Threshold().fit(calibrated_probabilities(learn, logits), targets)
    np.testing.assert_array_equal(learn.threshold_policy.thresholds, expected)


def test_calibrate_and_thresholds_fit_on_a_given_loader(learn, dls):
    other = dls.train.new(shuffle=False, drop_last=False)
    learn.calibrate("temp-scale", dl=other).thresholds("f1-global", dl=other)
    logits, targets = raw(learn, other)
    temperature = fit_temperature(logits, targets)
    valid_temperature = fit_temperature(*raw(learn))
    assert temperature != pytest.approx(valid_temperature)  # so the loader given mattered
    assert learn.calibrator.state()["temperature"] == pytest.approx(temperature, rel=1e-6)
    cut = GlobalF1Threshold().fit(expit(logits / learn.calibrator.state()["temperature"]), targets)
    np.testing.assert_array_equal(learn.threshold_policy.thresholds, cut)


def test_without_fitted_parts_the_loss_activation_and_half_decide(learn):
    logits = np.array([[0.0, -0.1, 2.0]])
    np.testing.assert_allclose(calibrated_probabilities(learn, logits), expit(logits))
    probs = np.array([[0.5, 0.49, 0.9]])
    np.testing.assert_array_equal(predicted_labels(learn, probs), [[True, False, True]])


def test_fitted_parts_survive_export_and_load_learner(learn, tmp_path):
    learn.post("temp-scale-per-class,f1-per-class")
    learn.export(tmp_path / "learner.pkl")
    loaded = load_learner(tmp_path / "learner.pkl")
    logits = np.random.default_rng(0).normal(size=(7, len(learn.dls.classes))) * 3
    probs = calibrated_probabilities(learn, logits)
    np.testing.assert_array_equal(calibrated_probabilities(loaded, logits), probs)
    np.testing.assert_array_equal(predicted_labels(loaded, probs), predicted_labels(learn, probs))
    assert loaded.specs["calibrator"].entry.name == "temp-scale-per-class"


class DoubledSigmoidLoss:
    """Stands in for a loss whose probabilities are not sigmoid(z), as LDAM's."""

    def activation(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(2 * z)


def test_a_pickled_calibrator_keeps_the_loss_activation_for_unfitted_classes():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(40, 2))
    targets = np.stack([rng.random(40) < expit(logits[:, 0]), np.zeros(40)], axis=1)
    calibrator = TemperatureScaling(per_class=True).fit(
        logits, targets, fallback=LossActivation(DoubledSigmoidLoss())
    )
    restored = pickle.loads(pickle.dumps(calibrator))
    probs = restored.transform(logits)
    np.testing.assert_allclose(probs[:, 1], expit(2 * logits[:, 1]))  # class 1 has no positive
    np.testing.assert_array_equal(probs, calibrator.transform(logits))


def test_a_step_discards_the_calibrator_and_a_calibrator_the_thresholds(learn):
    learn.post("temp-scale,fixed:threshold=0.3")
    learn.calibrate("platt")
    assert learn.threshold_policy is None and "thresholds" not in learn.specs
    learn.post("tta:scales=[0.9]")
    assert learn.calibrator is None and "calibrator" not in learn.specs


def test_post_refuses_parts_out_of_order(learn):
    with pytest.raises(CxrltError, match="'crt' is out of place"):
        learn.post("temp-scale,crt")


def plain_loaders(dls) -> DataLoaders:
    """fastai DataLoaders over the same images, with no sampler to draw balanced batches."""
    plain = DataLoaders(DataLoader(dls.train.dataset, bs=32), DataLoader(dls.valid.dataset, bs=32))
    plain.classes = dls.classes
    return plain


def assert_unchanged(learn, model, state: dict[str, torch.Tensor]) -> None:
    assert learn.model is model
    after = learn.model.state_dict()
    assert list(after) == list(state)
    assert all(after[k].numpy().tobytes() == v.numpy().tobytes() for k, v in state.items())
    assert not getattr(learn, "post_steps", [])


@pytest.mark.parametrize("steps", ["crt:epochs=1", "tau-norm,crt:epochs=1", "tau-norm,lws"])
def test_a_refused_retraining_step_leaves_the_model_byte_identical(learn, dls, steps):
    learn.dls = plain_loaders(dls)
    model, state = learn.model, {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(CxrltError, match="has no sampler"):
        learn.post(steps)
    assert_unchanged(learn, model, state)


@pytest.mark.parametrize(
    ("post", "dl", "message"),
    [
        ("crt:epochs=1,platt:C=0", None, "C must be > 0"),
        ("crt:epochs=1,temp-scale", [(torch.zeros(1, 32, 32),)] * 4, "yields images only"),
    ],
)
def test_a_refused_calibration_stops_post_before_its_steps(learn, post, dl, message):
    model, state = learn.model, {k: v.clone() for k, v in learn.model.state_dict().items()}
    loader = None if dl is None else DataLoader(dl, bs=2)
    with pytest.raises(CxrltError, match=message):
        learn.post(post, loader)
    assert_unchanged(learn, model, state)
