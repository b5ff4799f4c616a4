"""Backbones: greyscale timm models, pretrained weights from the hub or a local file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from cxrlt.errors import CxrltError
from cxrlt.model.backbone import timm_backbone


@pytest.mark.slow
def test_unreachable_pretrained_weights_give_a_clear_message():
    """HF_HUB_OFFLINE makes the hub fail at once, as on a machine without internet."""
    code = (
        "from cxrlt.model.backbone import timm_backbone\n"
        "from cxrlt.errors import CxrltError\n"
        "try:\n    timm_backbone('resnet18', pretrained=True)\n"
        "except CxrltError as error:\n    print(error)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    message = " ".join(result.stdout.split())
    assert "Could not load pretrained weights for 'resnet18'" in message
    assert "--no-pretrained" in message and "weights=PATH" in message


def test_a_local_weights_file_is_loaded(tmp_path):
    source = timm_backbone("resnet18", in_chans=1)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    loaded = timm_backbone("resnet18", in_chans=1, weights=str(path))
    for name, tensor in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_a_missing_weights_file_is_named():
    with pytest.raises(CxrltError, match="nowhere.pth.*does not exist"):
        timm_backbone("resnet18", weights="nowhere.pth")
