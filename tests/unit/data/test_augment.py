"""Batch augmentations: bounded, repeatable for a seed, and the identity at zero strength."""

import torch

from cxrlt.data.augment import BatchAugment

STILL = dict(rotate=0.0, scale=0.0, shift=0.0, brightness=0.0, contrast=0.0)


def batch() -> torch.Tensor:
    return torch.rand(6, 1, 24, 24, generator=torch.Generator().manual_seed(0))


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_zero_strength_is_the_identity():
    images = batch()
    assert torch.allclose(BatchAugment(**STILL)(images, seeded(1)), images, atol=1e-5)


def test_default_changes_images_but_stays_in_range_and_repeats_for_a_seed():
    images = batch()
    first = BatchAugment()(images, seeded(1))
    assert first.shape == images.shape and 0 <= first.min() and first.max() <= 1
    assert not torch.allclose(first, images, atol=1e-3)
    assert torch.equal(first, BatchAugment()(images, seeded(1)))
    assert not torch.equal(first, BatchAugment()(images, seeded(2)))


def test_flip_mirrors_some_images_and_is_off_by_default():
    images = batch()
    flipped = BatchAugment(**STILL, flip=True)(images, seeded(3))
    mirrored = [
        torch.allclose(f, i.flip(-1), atol=1e-5) for f, i in zip(flipped, images, strict=True)
    ]
    same = [torch.allclose(f, i, atol=1e-5) for f, i in zip(flipped, images, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True)) and any(mirrored)
    assert BatchAugment().flip is False


def test_brightness_shifts_the_mean():
    images = torch.full((4, 1, 8, 8), 0.5)
    brighter = BatchAugment(**{**STILL, "brightness": 0.2})(images, seeded(4))
    shifts = brighter.mean(dim=(1, 2, 3)) - 0.5
    assert (shifts.abs() <= 0.2 + 1e-6).all() and shifts.abs().max() > 0.01
