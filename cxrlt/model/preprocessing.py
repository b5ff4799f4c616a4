"""What a backbone expects of its input, pinned per model: the range its pixels are scaled to,
the mean and standard deviation it was trained with, and its number of channels.

cxrlt's loaders give greyscale images in [0, 1]; a pretrained backbone saw other numbers
(ImageNet statistics, a chest X-ray model's own, [-1024, 1024], RGB). The record is read from
the backbone once (:func:`preprocessing_of`), applied inside the model (:class:`Normalise`),
written into the run's config, and handed back when prediction rebuilds the model, so that
training and prediction feed the weights the same numbers even if the source it was read
from (timm's defaults, a hub config) changes later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from statistics import fmean
from typing import Any

import torch
from torch import nn

from cxrlt.errors import CxrltError

# Greyscale stand-ins for ImageNet statistics when a backbone carries none.
DEFAULT_MEAN, DEFAULT_STD = 0.449, 0.226


@dataclass(frozen=True)
class Preprocessing:
    """Images in [0, 1] are scaled linearly onto ``input_range``, repeated to ``in_chans``
    channels, then normalised by ``mean`` and ``std`` (one value, or one per channel).
    ``input_size`` is the resolution the weights were trained at (a hint for ``--size``);
    ``source`` says where the numbers come from."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_chans: int = 1
    input_range: tuple[float, float] = (0.0, 1.0)
    input_size: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise CxrltError(f"Invalid input pre-processing {self.describe()}: {problem}.")

    def _problem(self) -> str:
        if not isinstance(self.in_chans, int) or self.in_chans < 1:
            return f"in_chans must be a positive whole number, got {self.in_chans!r}"
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.in_chans):
                return f"{name} needs one value or one per channel, got {len(values)}"
            if not all(math.isfinite(v) for v in values):
                return f"{name} must be finite numbers, got {values}"
        if min(self.std) <= 0:
            return f"std must be positive, got {self.std}"
        low, high = self.input_range
        if not low < high:
            return f"input_range must be (low, high) with low < high, got {self.input_range}"
        return ""

    def describe(self) -> str:
        """One line for ``cxrlt show`` and run summaries."""
        size = f", trained at {self.input_size} px" if self.input_size else ""
        source = f" ({self.source})" if self.source else ""
        low, high = self.input_range
        return (
            f"[0, 1] -> [{low:g}, {high:g}], {self.in_chans} channel(s), "
            f"mean {_numbers(self.mean)}, std {_numbers(self.std)}{size}{source}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str) -> Preprocessing:
        """The record ``to_dict`` wrote; anything else is a CxrltError naming ``where``."""
        try:
            return cls(
                mean=tuple(float(v) for v in raw["mean"]),
                std=tuple(float(v) for v in raw["std"]),
                in_chans=int(raw.get("in_chans", 1)),
                input_range=tuple(float(v) for v in raw.get("input_range", (0.0, 1.0))),
                input_size=raw.get("input_size"),
                source=str(raw.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CxrltError(
                f"The input pre-processing in {where} is not readable ({type(error).__name__}: "
                f"{error}): restore the run's own config.json."
            ) from None


def _numbers(values: tuple[float, ...]) -> str:
    text = ", ".join(f"{v:.4g}" for v in values)
    return text if len(values) == 1 else f"({text})"


def from_pretrained_cfg(cfg: Mapping[str, Any], source: str = "") -> Preprocessing:
    """A timm ``pretrained_cfg`` read for a greyscale model (timm folds the RGB stem into
    ``in_chans=1``): its per-channel mean and std averaged into one value each."""
    size = cfg.get("input_size")
    return Preprocessing(
        mean=(fmean(cfg.get("mean") or (DEFAULT_MEAN,)),),
        std=(fmean(cfg.get("std") or (DEFAULT_STD,)),),
        input_size=int(size[-1]) if size else None,
        source=source,
    )


def preprocessing_of(backbone: nn.Module) -> Preprocessing:
    """What ``backbone`` expects: its own ``preprocessing`` record when it declares one (a
    plugin's backbone), else read from its timm ``pretrained_cfg``, else the defaults."""
    declared = getattr(backbone, "preprocessing", None)
    if isinstance(declared, Preprocessing):
        return declared
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    tag = ".".join(filter(None, (cfg.get("architecture"), cfg.get("tag"))))
    return from_pretrained_cfg(cfg, f"pretrained_cfg {tag}" if tag else "")


class Normalise(nn.Module):
    """Greyscale (B, 1, H, W) images in [0, 1] to what the backbone expects (see
    :class:`Preprocessing`), in one multiply-add: ``x * scale + shift`` per channel."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.preprocessing = p = preprocessing
        low, high = p.input_range
        mean = torch.tensor(p.mean).expand(p.in_chans)
        std = torch.tensor(p.std).expand(p.in_chans)
        shape = (1, p.in_chans, 1, 1)
        # Not saved with the weights: the run's config holds the record they come from.
        self.register_buffer("scale", ((high - low) / std).view(shape), persistent=False)
        self.register_buffer("shift", ((low - mean) / std).view(shape), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images * self.scale + self.shift

    def extra_repr(self) -> str:
        return self.preprocessing.describe()
