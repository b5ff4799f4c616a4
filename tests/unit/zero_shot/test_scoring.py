"""Zero-shot scores against an independent computation with the raw OpenCLIP model: each
ensemble and probability mapping, and the refusals that come before any image is read."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlt.errors import CxrltError
from cxrlt.registry import resolve
from cxrlt.zero_shot.prompts import ClassPrompts
from cxrlt.zero_shot.scoring import Scoring, score_images
from tests.helpers.tiny_clip import MEAN, STD, write_tiny_clip

PROMPTS = [
    ClassPrompts(("a bulla.", "a large air space.", "bullous disease."), ("no bulla.",)),
    ClassPrompts(("scoliosis.", "a curved spine."), ("a straight spine.", "no scoliosis.")),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny")
    return resolve("image_text_models", f"local-dir:{folder}").build()


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).integers(0, 256, (5, 32, 32), dtype=np.uint8)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _reference(tiny, pixels):
    """Image and per-prompt embeddings from the raw model: greyscale to 3 channels, scaled
    to [0, 1], normalised with the config's mean and std."""
    import torch

    rgb = np.repeat(pixels[:, None].astype(np.float32) / 255, 3, axis=1)
    normed = (rgb - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]
    with torch.no_grad():
        images = tiny.model.encode_image(torch.tensor(normed, dtype=torch.float32)).numpy()

        def texts(prompts):
            return _unit(tiny.model.encode_text(tiny.tokenizer(list(prompts))).numpy())

        return (
            _unit(images),
            [texts(p.positive) for p in PROMPTS],
            [texts(p.negative) for p in PROMPTS],
        )


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_embedding_ensemble_with_the_sigmoid_mapping(tiny, pixels):
    images, positive, _ = _reference(tiny, pixels)
    classes = np.stack([_unit(t.mean(axis=0)) for t in positive])
    expected = 5.0 * (images @ classes.T - 0.1)
    scores = score_images(tiny, pixels, PROMPTS, Scoring(shift=0.1), bs=2)
    np.testing.assert_allclose(scores.logits, expected, atol=1e-5)
    np.testing.assert_allclose(scores.probs, _sigmoid(expected), atol=1e-6)


def test_score_ensemble_averages_each_prompts_similarity(tiny, pixels):
    images, positive, _ = _reference(tiny, pixels)
    expected = 3.0 * np.stack([(images @ t.T).mean(axis=1) for t in positive], axis=1)
    scores = score_images(tiny, pixels, PROMPTS, Scoring("score", scale=3.0))
    np.testing.assert_allclose(scores.logits, expected, atol=1e-5)


def test_softmax_against_negatives_at_the_models_temperature(tiny, pixels):
    images, positive, negative = _reference(tiny, pixels)
    pos = np.stack([(images @ t.T).mean(axis=1) for t in positive], axis=1)
    neg = np.stack([(images @ t.T).mean(axis=1) for t in negative], axis=1)
    logits = tiny.logit_scale * np.stack([pos, neg], axis=-1)
    two_way = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    scores = score_images(tiny, pixels, PROMPTS, Scoring("score", "softmax"))
    np.testing.assert_allclose(scores.probs, two_way[..., 0], atol=1e-5)


def test_the_two_ensembles_differ(tiny, pixels):
    by_embedding = score_images(tiny, pixels, PROMPTS, Scoring("embedding")).logits
    by_score = score_images(tiny, pixels, PROMPTS, Scoring("score")).logits
    assert not np.allclose(by_embedding, by_score)


@pytest.mark.parametrize(
    ("scoring", "prompts", "message"),
    [
        (Scoring(probability="softmax"), [ClassPrompts(("a.",), ())], "needs negative prompts"),
        (Scoring(probability="softmax", shift=0.2), PROMPTS[:1], "--shift applies to"),
        (Scoring(scale=0.0), PROMPTS[:1], "--scale must be positive"),
        (Scoring(ensemble="median"), PROMPTS[:1], "--ensemble 'median'"),
        (Scoring(probability="tanh"), PROMPTS[:1], "--probability 'tanh'"),
    ],
)
def test_scoring_refuses_what_the_prompts_cannot_serve(scoring, prompts, message):
    with pytest.raises(CxrltError, match=message):
        scoring.check(["A"], prompts, "prompts.toml")
