"""tau-normalisation, Kang et al., ICLR 2020, "Decoupling Representation and Classifier for
Long-Tailed Recognition": W_c <- W_c / ||W_c||^tau.

Head classes end training with larger weight norms, hence larger logits; dividing by a power
of the norm evens them out. tau = 0 changes nothing, tau = 1 fully normalises.

In multi-label classification with a sigmoid per class, W_c / k_c (k_c > 0) is a monotone
change of class c's logit, so each class's ranking and AP stay as they were whatever tau is:
choosing tau by validation mAP only breaks ties in rounding. The default criterion is
therefore the learner's validation loss, which the logits' scale does move.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from fastai.learner import Learner
from fastcore.basics import noop
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import macro_average_precision
from cxrlt.post import PostStep, classifier_of

DEFAULT_TAUS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def linear_layer(model: nn.Module) -> nn.Linear:
    """The head's linear classifier (``head.fc``), the one tau-normalisation rescales."""
    head = classifier_of(model).head
    fc = getattr(head, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise CxrltError(
            f"tau-norm rescales the rows of a linear classifier, and the head "
            f"{type(head).__name__} has no linear layer 'fc': use head 'linear'."
        )
    return fc


def validation_score(learn: Learner, metric: str) -> float:
    """Higher is better: validation mAP, or minus the loss, over the validation rows a choice
    may be made on (``learn.choice_rows``, a mask; all rows when unset), so that the images
    whose metrics are reported do not choose tau (:mod:`cxrlt.evaluation.selection`)."""
    logits, targets = learn.get_preds(ds_idx=1, act=noop)
    rows = getattr(learn, "choice_rows", None)
    if rows is not None:
        rows = torch.as_tensor(rows, dtype=torch.bool)
        logits, targets = logits[rows], targets[rows]
    if metric == "loss":
        return -float(learn.loss_func(logits.float(), targets))
    return macro_average_precision(logits.float().numpy(), targets.numpy())


class TauNormalisation(PostStep):
    """Divide each class's weight row by its norm to the power tau, tau from ``taus`` chosen
    on the validation split by ``metric`` (``loss``, or ``mAP``: see the module's note).

    The bias is kept (``bias=True``): in multi-label BCE it holds each class's prior. Kang et
    al. use no bias; ``bias=False`` zeroes it. The rescaled weights are written into the head,
    so prediction needs nothing else. After ``fit``, ``tau`` is the choice and ``scores`` the
    validation score of every tau.
    """

    def __init__(
        self,
        *,
        taus: tuple[float, ...] = DEFAULT_TAUS,
        metric: Literal["loss", "mAP"] = "loss",
        bias: bool = True,
    ) -> None:
        if not taus:
            raise ValueError("taus must list at least one value")
        self.taus, self.metric, self.bias = [float(t) for t in taus], metric, bias
        self.tau: float | None = None
        self.scores: dict[float, float] = {}

    chooses_on_validation = True

    def check(self, learn: Learner) -> None:
        linear_layer(learn.model)

    @torch.no_grad()
    def fit(self, learn: Learner) -> None:
        fc = linear_layer(learn.model)
        if not self.bias and fc.bias is not None:
            fc.bias.zero_()
        weight = fc.weight.detach().clone()
        norms = weight.norm(dim=1, keepdim=True).clamp_min(torch.finfo(weight.dtype).tiny)
        for tau in self.taus:
            fc.weight.copy_(weight / norms**tau)
            self.scores[tau] = validation_score(learn, self.metric)
        finite = {tau: s for tau, s in self.scores.items() if not math.isnan(s)}
        if not finite:
            fc.weight.copy_(weight)
            raise CxrltError(f"tau-norm: no tau has a validation {self.metric}: {self.scores}.")
        self.tau = max(finite, key=finite.__getitem__)  # the first of equal scores
        fc.weight.copy_(weight / norms**self.tau)

    def choices(self) -> dict[str, Any]:
        sign = -1 if self.metric == "loss" else 1  # scores are "higher is better"
        scores = {str(tau): sign * score for tau, score in self.scores.items()}
        return {"tau": self.tau, f"validation_{self.metric}_by_tau": scores}
