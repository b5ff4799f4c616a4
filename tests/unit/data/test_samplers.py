"""Samplers: empirical draw frequencies against their formulas, determinism and registry."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlt.data.samplers import (
    ClassAwareSampler,
    InverseRarestSampler,
    RepeatFactorSampler,
    SquareRootSampler,
    UniformSampler,
)
from cxrlt.registry import registry, resolve

COUNTS = (500, 50, 5)
N_EMPTY = 445
EPOCHS = 60


def single_label() -> np.ndarray:
    """1000 images: 500 / 50 / 5 positives of three classes, 445 without a label."""
    classes = np.repeat(np.arange(3), COUNTS)
    labels = np.zeros((len(classes) + N_EMPTY, 3), np.uint8)
    labels[np.arange(len(classes)), classes] = 1
    return labels


def multi_label() -> np.ndarray:
    """The class-2 images also show class 0 (the head class): n = 505 / 50 / 5."""
    labels = single_label()
    labels[labels[:, 2] == 1, 0] = 1
    return labels


def draw_counts(sampler, n: int, epochs: int = EPOCHS) -> np.ndarray:
    """How often each image is drawn, over many epochs."""
    rng = np.random.default_rng(0)
    return sum(np.bincount(sampler.indices(rng), minlength=n) for _ in range(epochs))


def assert_shares(counts: np.ndarray, groups: np.ndarray, expected: np.ndarray) -> None:
    """Each group's share of all draws is its expected probability within 5 binomial SEs."""
    total = counts.sum()
    for group, p in enumerate(expected):
        share = counts[groups == group].sum() / total
        assert abs(share - p) < 5 * np.sqrt(p * (1 - p) / total) + 1e-12, (group, share, p)


def groups_of(labels: np.ndarray) -> np.ndarray:
    """Single-label group per image: its class, or 3 for images without a label."""
    return np.where(labels.any(axis=1), labels.argmax(axis=1), 3)


def test_uniform_is_a_permutation():
    idx = UniformSampler(single_label()).indices(np.random.default_rng(1))
    assert sorted(idx) == list(range(1000))


def test_class_aware_gives_each_class_a_third():
    labels = single_label()
    counts = draw_counts(ClassAwareSampler(labels), len(labels))
    assert_shares(counts, groups_of(labels), np.array([1, 1, 1, 0]) / 3)
    assert counts[labels.sum(axis=1) == 0].sum() == 0


def test_class_aware_multi_label_oversamples_the_co_occurring_head_class():
    labels = multi_label()
    counts = draw_counts(ClassAwareSampler(labels), len(labels))
    n0 = 505
    # label 2 is drawn when class 2 is picked, or class 0 is picked and lands on a shared image
    p2 = 1 / 3 + (1 / 3) * 5 / n0
    assert_shares(counts, labels[:, 2].astype(int) ^ 1, np.array([p2, 1 - p2]))


@pytest.mark.parametrize(
    ("cls", "weight"),
    [(SquareRootSampler, lambda n: 1 / np.sqrt(n)), (InverseRarestSampler, lambda n: 1 / n)],
)
def test_rarest_class_weights(cls, weight):
    labels = single_label()
    counts = draw_counts(cls(labels), len(labels))
    # shares ∝ n_c w(n_c); unlabeled images use the most frequent class's count (500)
    mass = np.array([n * weight(n) for n in COUNTS] + [N_EMPTY * weight(max(COUNTS))])
    assert_shares(counts, groups_of(labels), mass / mass.sum())


@pytest.mark.parametrize(
    ("cls", "weight"),
    [(SquareRootSampler, lambda n: 1 / np.sqrt(n)), (InverseRarestSampler, lambda n: 1 / n)],
)
def test_rarest_class_wins_on_multi_label_images(cls, weight):
    labels = multi_label()
    counts = draw_counts(cls(labels), len(labels))
    groups = np.where(labels[:, 2] == 1, 2, groups_of(labels))  # shared images count as class 2
    n = (505, 50, 5)
    mass = np.array([500 * weight(n[0]), 50 * weight(n[1]), 5 * weight(n[2])])
    mass = np.append(mass, N_EMPTY * weight(n[0]))
    assert_shares(counts, groups, mass / mass.sum())


def test_repeat_factor_mean_counts_and_cap():
    labels = multi_label()
    t = 0.1
    epochs = 400
    counts = draw_counts(RepeatFactorSampler(labels, t=t), len(labels), epochs) / epochs
    freq = np.array([505, 50, 5]) / len(labels)
    r_c = np.maximum(1, np.sqrt(t / freq))  # ≈ 1, 1.41, 4.47
    r_i = np.where(labels == 1, r_c, 1).max(axis=1)
    assert np.isclose(r_i[labels[:, 2] == 1], r_c[2]).all()  # the rare class's factor wins
    # per image: count ~ floor(r) + Bernoulli(frac(r)), averaged over the epochs
    se = np.sqrt((r_i % 1) * (1 - r_i % 1) / epochs)
    assert (np.abs(counts - r_i) <= 6 * se + 1e-12).all()
    for c in range(3):
        assert abs(counts[labels[:, c] == 1].mean() - r_i[labels[:, c] == 1].mean()) < 0.05

    capped = RepeatFactorSampler(labels, t=t, cap=3.0)
    idx = capped.indices(np.random.default_rng(0))
    per_image = np.bincount(idx, minlength=len(labels))
    assert (per_image[labels[:, 2] == 1] == 3).all()
    assert capped.factors.max() == 3.0


def test_repeat_factor_defaults_leave_common_classes_alone():
    labels = single_label()
    sampler = RepeatFactorSampler(labels)  # t = 0.01: only the 0.5% class is below t
    assert np.isclose(sampler.factors[labels[:, 2] == 1], np.sqrt(2)).all()
    assert (sampler.factors[labels[:, 2] == 0] == 1).all()


@pytest.mark.parametrize(
    "name", ["uniform", "class-aware", "repeat-factor", "sqrt", "inverse-rarest"]
)
def test_registered_samplers_are_deterministic_and_in_range(name):
    labels = multi_label()
    sampler = resolve("samplers", name).build(labels=labels)
    a = sampler.indices(np.random.default_rng([7, 0]))
    b = sampler.indices(np.random.default_rng([7, 0]))
    c = sampler.indices(np.random.default_rng([7, 1]))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype.kind == "i" and a.min() >= 0 and a.max() < len(labels)
    if name != "repeat-factor":
        assert len(a) == len(labels)


def test_every_registered_sampler_builds():
    labels = single_label()
    for entry in registry("samplers").match("*"):
        sampler = resolve("samplers", entry.name).build(labels=labels)
        assert len(sampler.indices(np.random.default_rng(0))) > 0


def test_repeat_factor_has_no_cap_by_default_as_in_lvis():
    """r_c = max(1, sqrt(t / f_c)) uncapped (Gupta et al. 2019): 1 positive in 20,000 images
    at t = 0.01 repeats sqrt(200) ~ 14.1 times; cap=10 still caps."""
    labels = np.zeros((20_000, 2), np.uint8)
    labels[0, 1] = 1
    labels[1:, 0] = 1
    expected = np.sqrt(0.01 / (1 / 20_000))
    assert RepeatFactorSampler(labels).factors[0] == pytest.approx(expected)
    assert RepeatFactorSampler(labels, cap=10.0).factors[0] == 10.0


def test_repeat_factor_params_come_from_the_spec():
    sampler = resolve("samplers", "repeat-factor:t=0.1,cap=2").build(labels=single_label())
    assert sampler.factors.max() == 2.0


@pytest.mark.parametrize("name", ["class-aware", "repeat-factor"])
def test_every_rank_draws_the_same_order_whatever_its_global_random_state(name):
    """Distributed ranks build their loaders separately; only (seed, epoch) may decide."""
    import torch

    from cxrlt.data.loaders import cxr_dataloaders
    from cxrlt.pytest_plugin import TINY_DATA

    orders = []
    for global_seed in (1, 2):  # two "ranks" whose global generators differ
        np.random.seed(global_seed)
        torch.manual_seed(global_seed)
        dls = cxr_dataloaders(TINY_DATA, size=32, bs=16, sampler=name, seed=4, device="cpu")
        orders.append([dls.train.get_idxs() for _ in range(3)])
    assert orders[0] == orders[1]
    assert orders[0][0] != orders[0][1]  # but a new order every epoch
