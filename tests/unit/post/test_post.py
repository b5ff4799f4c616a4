"""Post-training steps: what each changes and leaves, hand checks, and the prediction-time
contract (rebuild from the specs, load the weights, get the same logits)."""

from __future__ import annotations

import pytest
import torch

import cxrlt.post  # noqa: F401 - adds Learner.post
from cxrlt.data.samplers import ClassAwareSampler
from cxrlt.errors import CxrltError
from cxrlt.post import post_splitter, rebuild
from cxrlt.post.lws import ScaledLogits
from cxrlt.post.normal_gating import NormalGating, gate_logits
from cxrlt.post.tau_norm import DEFAULT_TAUS, TauNormalisation, validation_score
from cxrlt.post.tta import TTAModel, rescale
from cxrlt.registry import registry, resolve
from cxrlt.training.learner import cxr_learner, loss_callbacks


def learner(dls, trained, loss: str = "bce"):
    learn = cxr_learner(dls, "resnet18", loss, pretrained=False)
    learn.model.load_state_dict(trained)
    learn.create_opt()
    return learn


def post(learn, steps: str):
    with learn.no_bar(), learn.no_logging():
        return learn.post(steps)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def logits(model: torch.nn.Module, dls) -> torch.Tensor:
    images, _ = dls.valid.one_batch()
    return model.eval()(images)


def test_steps_are_registered():
    names = {entry.name for entry in registry("post").entries}
    assert names == {"crt", "lws", "tau-norm", "tta", "normal-gating", "ema", "study-views"}
    assert resolve("post", "tta:scales=[0.8]").params == {
        "flip": False,
        "scales": [0.8],
        "merge": "logit",
    }
    with pytest.raises(CxrltError, match="sampler"):
        resolve("post", "crt:sampler=nope").build()


@pytest.mark.slow
def test_crt_retrains_the_head_alone(dls, trained, monkeypatch):
    learn = learner(dls, trained)
    loader, opt, cbs = learn.dls.train, learn.opt, [type(cb) for cb in learn.cbs]
    sampler, epoch = loader.sampler, loader.epoch
    drawn = []
    draw = ClassAwareSampler.indices
    monkeypatch.setattr(
        ClassAwareSampler, "indices", lambda s, rng: drawn.append(1) or draw(s, rng)
    )
    before = snapshot(learn.model)
    post(learn, "crt:epochs=1")
    after = learn.model.state_dict()
    assert drawn  # class-balanced batches
    assert any("running_mean" in k for k in before) and any(
        "num_batches_tracked" in k for k in before
    )
    for key, value in before.items():
        if key.startswith("head."):
            assert not torch.equal(after[key], value), key
        else:
            assert torch.equal(after[key], value), key  # weights and BatchNorm statistics
    assert loader.sampler is sampler and loader.epoch == epoch
    assert learn.opt is opt and [type(cb) for cb in learn.cbs] == cbs
    assert all(p.requires_grad for p in learn.model.parameters())
    assert [str(s.spec) for s in learn.post_steps] == ["crt:epochs=1,lr=0.001,sampler=class-aware"]
    drawn.clear()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)  # the main training's state is intact
    assert not drawn


def test_crt_sets_aside_deferred_reweighting(dls, trained):
    learn = learner(dls, trained, loss="drw:start=0")
    (reweighting,) = loss_callbacks(learn.loss_func)
    post(learn, "crt:epochs=1")
    assert reweighting.epochs_done == 0 and reweighting in learn.cbs


@pytest.mark.slow
def test_lws_trains_the_scales_alone(dls, trained):
    learn = learner(dls, trained)
    before = snapshot(learn.model)
    post(learn, "lws:epochs=1")
    assert isinstance(learn.model, ScaledLogits)
    assert not torch.equal(learn.model.scales, torch.ones(len(dls.classes)))
    for key, value in learn.model.model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert any(p is learn.model.scales for p in post_splitter(learn.model)[-1])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, reset_opt=True)  # a later fit can split the wrapped model


@pytest.mark.slow
def test_tau_zero_keeps_the_logits(dls, trained):
    learn = learner(dls, trained)
    expected, bias = logits(learn.model, dls), learn.model.head.fc.bias.detach().clone()
    post(learn, "tau-norm:taus=[0.0]")
    assert torch.equal(logits(learn.model, dls), expected)
    post(learn, "tau-norm:taus=[0.0],bias=False")  # Kang et al.'s bias-free classifier
    torch.testing.assert_close(logits(learn.model, dls), expected - bias)
    assert torch.equal(learn.model.head.fc.bias, torch.zeros(len(dls.classes)))


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["mAP", "loss"])
def test_tau_is_the_validation_best(dls, trained, metric):
    learn = learner(dls, trained)
    weight = learn.model.head.fc.weight.detach().clone()
    step = TauNormalisation(metric=metric)
    with learn.no_bar(), learn.no_logging():
        step.fit(learn)
        final = validation_score(learn, metric)
    assert step.tau in DEFAULT_TAUS and set(step.scores) == set(DEFAULT_TAUS)
    assert step.scores[step.tau] == max(step.scores.values()) == pytest.approx(final)
    if metric == "mAP":  # W_c / k_c is monotone per class: no tau changes a class's AP
        assert max(step.scores.values()) - min(step.scores.values()) < 1e-9
    norms = weight.norm(dim=1, keepdim=True)
    torch.testing.assert_close(learn.model.head.fc.weight, weight / norms**step.tau)


def test_tau_norm_needs_a_linear_head(dls):
    learn = cxr_learner(dls, "resnet18", "bce", head="cosine", pretrained=False)
    with pytest.raises(CxrltError, match="linear"):
        post(learn, "tau-norm")


def test_tta_flip_by_hand(dls, trained):
    learn = learner(dls, trained)
    model = learn.model.eval()
    images, _ = dls.valid.one_batch()
    with torch.no_grad():
        plain, mirrored = model(images), model(images.flip(-1))
        by_logit = TTAModel(model, flip=True, scales=(), merge="logit")(images)
        by_prob = TTAModel(model, flip=True, scales=(), merge="prob")(images)
    torch.testing.assert_close(by_logit, (plain + mirrored) / 2)
    torch.testing.assert_close(
        torch.sigmoid(by_prob), (torch.sigmoid(plain) + torch.sigmoid(mirrored)) / 2
    )


def test_rescale_keeps_the_size_about_the_centre():
    images = torch.ones(2, 1, 10, 10)
    assert torch.equal(rescale(images, 1.0), images)
    smaller = rescale(images, 0.6)
    assert smaller.shape == images.shape
    assert smaller[..., 2:8, 2:8].min() > 0.999 and smaller[..., 0, :].max() == 0  # black border
    ramp = torch.arange(10.0).expand(1, 1, 10, 10)
    larger = rescale(ramp, 1.2)
    assert larger.shape == ramp.shape and larger[..., 0].min() > 0  # cropped, not padded


def test_normal_gating_by_hand():
    z = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 4.0, 1.0], [80.0, -80.0, 30.0], [0.0, 90.0, -60.0]])
    gated = gate_logits(z.double(), normal=1, alpha=0.5)
    p = torch.sigmoid(z.double())
    expected = p * (1 - p[:, 1:2]) ** 0.5
    expected[:, 1] = p[:, 1]
    torch.testing.assert_close(torch.sigmoid(gated), expected)
    assert torch.isfinite(gate_logits(z, normal=1, alpha=0.5)).all()
    assert torch.equal(gated[:, 1], z[:, 1].double())


def test_normal_gating_needs_a_normal_class():
    with pytest.raises(CxrltError, match="Effusion, Mass"):
        NormalGating().wrap(torch.nn.Identity(), ("Effusion", "Mass"))


@pytest.mark.parametrize("step", ["normal-gating", "tta:merge=prob"])
def test_probability_steps_need_sigmoid_probabilities(dls, step):
    learn = cxr_learner(dls, "resnet18", "ldam", pretrained=False)
    with pytest.raises(CxrltError, match="sigmoid"):
        post(learn, step)


@pytest.mark.slow
@pytest.mark.parametrize(
    "steps", ["lws:epochs=1", "tta:flip=True", "crt:epochs=1,tau-norm,lws:epochs=1,normal-gating"]
)
def test_rebuild_reproduces_the_post_processed_model(dls, trained, steps):
    learn = learner(dls, trained)
    post(learn, steps)
    recorded = [step.to_dict()["spec"] for step in learn.post_steps]  # what a run dir keeps
    fresh = cxr_learner(dls, "resnet18", "bce", pretrained=False).model
    rebuilt = rebuild(fresh, recorded, dls.classes)
    rebuilt.load_state_dict(learn.model.state_dict())
    assert torch.equal(logits(rebuilt, dls), logits(learn.model, dls))


def test_post_runs_steps_in_order_and_records_them(dls, trained):
    learn = learner(dls, trained)
    assert post(learn, "crt:epochs=1,tta") is learn
    assert isinstance(learn.model, TTAModel)
    assert [s.entry.name for s in learn.post_steps] == ["crt", "tta"]
    post(learn, "")
    assert len(learn.post_steps) == 2


def test_ema_ends_with_the_average_of_a_short_fine_tune(dls, trained, monkeypatch):
    from cxrlt.post.averaging import WeightAveragingStep
    from cxrlt.training.averaging import WeightAveraging

    learn = learner(dls, trained)
    seen = {}
    original = WeightAveraging.after_fit

    def keep_average(self):  # the average the callback hands over, before it does
        seen["average"] = {k: v.clone() for k, v in self.average.module.state_dict().items()}
        original(self)

    monkeypatch.setattr(WeightAveraging, "after_fit", keep_average)
    post(learn, "ema:epochs=1,lr=0.01,decay=0.5")
    state = learn.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in seen["average"].items())
    assert any(not torch.equal(state[k], trained[k]) for k in trained)
    assert [str(step.spec) for step in learn.post_steps] == ["ema:epochs=1,lr=0.01,decay=0.5"]
    with pytest.raises(ValueError, match="decay"):
        WeightAveragingStep(decay=1.0)
