"""Zero-shot scores: image embeddings against each class's prompt embeddings, ensembled over
the prompts, then mapped to a probability.

Ensembling (``ensemble``): ``embedding`` averages a class's unit prompt embeddings into one
(renormalised) class embedding, as CLIP's prompt ensembles do; ``score`` averages the cosine
similarity of the image with each prompt. Probability (``probability``): ``sigmoid`` is
sigmoid(scale x (cosine - shift)), the CXR-LT 2026 Task 2 winner's mapping with scale 5, shift
0; ``softmax`` is the two-way softmax of the class's prompts against its negative prompts at
the model's learned temperature, i.e. sigmoid(scale x (cosine - negative cosine)). Both give a
logit, kept for ranking: probabilities saturate where logits do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from cxrlt.errors import CxrltError
from cxrlt.zero_shot.model import ImageTextModel
from cxrlt.zero_shot.prompts import ClassPrompts

Ensemble = Literal["embedding", "score"]
Probability = Literal["sigmoid", "softmax"]
SIGMOID_SCALE = 5.0  # the CXR-LT 2026 Task 2 development winner's sigmoid(5 x mean cosine)


@dataclass(frozen=True)
class Scoring:
    """How similarities become probabilities; ``scale`` None takes the mapping's default."""

    ensemble: Ensemble = "embedding"
    probability: Probability = "sigmoid"
    scale: float | None = None
    shift: float = 0.0

    def check(self, classes: Sequence[str], prompts: Sequence[ClassPrompts], source: str) -> None:
        """Refuse, before any image is read, a mapping the prompts cannot serve."""
        if self.ensemble not in ("embedding", "score"):
            raise CxrltError(f"--ensemble {self.ensemble!r}: use embedding or score.")
        if self.probability not in ("sigmoid", "softmax"):
            raise CxrltError(f"--probability {self.probability!r}: use sigmoid or softmax.")
        if self.scale is not None and not self.scale > 0:
            raise CxrltError(f"--scale must be positive, got {self.scale}.")
        if self.probability == "softmax":
            if self.shift:
                raise CxrltError("--shift applies to --probability sigmoid only: leave it out.")
            lacking = [name for name, p in zip(classes, prompts, strict=True) if not p.negative]
            if lacking:
                raise CxrltError(
                    f"--probability softmax needs negative prompts, and {source} gives none for "
                    f"{', '.join(map(repr, lacking))}: add negative_templates or "
                    "[negative_prompts], or use --probability sigmoid."
                )

    def scale_for(self, model: ImageTextModel) -> float:
        if self.scale is not None:
            return self.scale
        return SIGMOID_SCALE if self.probability == "sigmoid" else model.logit_scale


@dataclass(frozen=True)
class ZeroShotScores:
    """Per image and class: the logit (for ranking) and its probability."""

    logits: np.ndarray
    probs: np.ndarray


class ClassScorer:
    """The prompts of some classes, embedded once, scoring batches of image embeddings."""

    def __init__(
        self, model: ImageTextModel, prompts: Sequence[ClassPrompts], scoring: Scoring
    ) -> None:
        self.scoring, self.scale = scoring, scoring.scale_for(model)
        self.positive = [model.encode_texts(p.positive) for p in prompts]
        self.negative = (
            [model.encode_texts(p.negative) for p in prompts]
            if scoring.probability == "softmax"
            else None
        )

    def _similarity(self, images: Any, texts: list[Any]) -> Any:
        import torch

        if self.scoring.ensemble == "embedding":
            classes = torch.stack([t.mean(dim=0) for t in texts])
            return images @ torch.nn.functional.normalize(classes, dim=-1).T
        return torch.stack([(images @ t.T).mean(dim=1) for t in texts], dim=1)

    def logits(self, images: Any) -> np.ndarray:
        """(N, C) logits of unit image embeddings."""
        similarity = self._similarity(images, self.positive)
        if self.negative is not None:
            similarity = similarity - self._similarity(images, self.negative)
        else:
            similarity = similarity - self.scoring.shift
        return (self.scale * similarity).cpu().numpy().astype(np.float64)


def score_images(
    model: ImageTextModel,
    pixels: np.ndarray,
    prompts: Sequence[ClassPrompts],
    scoring: Scoring,
    *,
    bs: int = 64,
) -> ZeroShotScores:
    """Zero-shot logits and probabilities of (N, H, W) uint8 images for the prompts' classes."""
    scorer = ClassScorer(model, prompts, scoring)
    chunks = [
        scorer.logits(model.encode_images(pixels[start : start + bs]))
        for start in range(0, len(pixels), bs)
    ]
    logits = np.concatenate(chunks) if chunks else np.zeros((0, len(prompts)))
    return ZeroShotScores(logits, 1.0 / (1.0 + np.exp(-logits)))
