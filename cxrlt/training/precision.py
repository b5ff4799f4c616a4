"""Mixed precision and channels-last memory: GPU speed with no change to what is learnt."""

from __future__ import annotations

import torch
from fastai.callback.channelslast import ChannelsLast
from fastai.callback.core import Callback
from fastai.callback.fp16 import AMPMode, MixedPrecision

from cxrlt.errors import CxrltError


def mixed_precision_mode(precision: str, device: torch.device) -> str | None:
    """``auto``: bf16 on GPUs that support it, else fp16; full 32-bit on the CPU.

    fastai's mixed precision is CUDA autocast, so asking for it on the CPU is an error.
    """
    if precision == "32":
        return None
    if device.type != "cuda":
        if precision == "auto":
            return None
        raise CxrltError(f"--precision {precision} needs a GPU; on {device} use --precision 32.")
    if precision == "auto":
        with torch.cuda.device(device):  # native support only: emulated bf16 is slower than fp32
            return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    return precision


def precision_callbacks(
    precision: str, channels_last: bool | None, device: torch.device
) -> list[Callback]:
    """Callbacks for ``precision`` (auto, 32, bf16, fp16) and channels-last (None: on a GPU)."""
    callbacks: list[Callback] = []
    mode = mixed_precision_mode(precision, device)
    if mode is not None:
        callbacks.append(MixedPrecision(amp_mode=AMPMode(mode)))
    if channels_last if channels_last is not None else device.type == "cuda":
        callbacks.append(ChannelsLast())
    return callbacks
