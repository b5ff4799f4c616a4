import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from cxrlt_template.step import MyStep

from cxrlt.testing import check_entry, tiny_classifier


def test_offsets_match_hand_computation():
    classes = ("rare", "common")
    step = MyStep(tau=1.0)
    model = step.wrap(tiny_classifier(len(classes)), classes)
    # 1 and 3 of 4 training images positive: logit(1/4) = -log 3, logit(3/4) = log 3
    learn = SimpleNamespace(
        model=model, dls=SimpleNamespace(class_counts=np.array([1, 3]), n_train=4)
    )
    step.fit(learn)
    assert model.offset.tolist() == pytest.approx([math.log(3), -math.log(3)], rel=1e-6)
    images = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        shifted = model(images) - model.model(images)
    assert torch.allclose(shifted, torch.tensor([math.log(3), -math.log(3)]).expand(2, 2))


def test_keeps_the_post_step_contract():
    """wrap adds no random values, keeps the classifier inside, and reloads its weights."""
    check_entry("post", "my-step:tau=0.5")
