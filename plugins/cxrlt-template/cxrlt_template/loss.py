"""The plugin's loss. Replace ``MyLoss`` with yours; it is a working example until then.

The example is Poly-1 (Leng et al., ICLR 2022, "PolyLoss"): cross-entropy expanded in powers
of (1 - p_t), with the first term re-weighted. For multi-label targets,
L = BCE(z, y) + epsilon * (1 - p_t), where p_t = p for positives and 1 - p for negatives;
epsilon = 0 gives plain BCE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cxrlt import BCELoss


class MyLoss(BCELoss):
    """Poly-1 loss: BCE plus ``epsilon * (1 - p_t)`` per element. Replace it with your loss.

    The rules cxrlt relies on (``cxrlt.testing.check_entry`` checks them):

    - Parameters are keyword-only with defaults and type hints; users set them in the spec
      (``--loss my-loss:epsilon=2``). Declare ``class_counts`` (positives per class) or
      ``n_items`` (training images) to have cxrlt pass them in.
    - Subclassing ``BCELoss`` gives ``activation`` (sigmoid), ``decodes`` and ``callbacks``;
      override ``elementwise`` and ``forward`` averages it over every element.
    """

    def __init__(self, *, epsilon: float = 1.0) -> None:
        super().__init__()
        self.epsilon = epsilon

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        probs = torch.sigmoid(logits)
        p_t = targets * probs + (1 - targets) * (1 - probs)
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return bce + self.epsilon * (1 - p_t)
