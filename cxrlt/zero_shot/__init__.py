"""Zero-shot classification with image-text models: each class is named by prompts, nothing is
trained, so classes without a single labelled example can be scored (CXR-LT 2026 Task 2)."""

from cxrlt.zero_shot.model import ImageTextModel

__all__ = ["ImageTextModel"]
