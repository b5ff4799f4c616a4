"""Classifier re-training (cRT), Kang et al., ICLR 2020, "Decoupling Representation and
Classifier for Long-Tailed Recognition".

Features learnt with instance-balanced sampling are good; the classifier learnt with them is
biased towards head classes. cRT keeps the features (BatchNorm statistics too), re-initialises
the head and retrains it alone on class-balanced batches.
"""

from __future__ import annotations

from fastai.learner import Learner
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.model.build import head_input_width
from cxrlt.post import PostStep, classifier_of, learner_classes
from cxrlt.post.retrain import require_sampled_loader, retrain
from cxrlt.registry import Resolved, resolve


def head_spec(learn: Learner) -> Resolved:
    """The learner's head spec, which cRT builds a fresh head from."""
    spec = getattr(learn, "specs", {}).get("head")
    if spec is None:
        raise CxrltError(
            "cRT re-initialises the head from learn.specs['head'], which this learner lacks: "
            "build it with cxr_learner."
        )
    return spec


def fresh_head(learn: Learner) -> nn.Module:
    """A newly initialised head like the model's, built from the learner's head spec (every
    head initialises as it was built; not all of them have ``reset_parameters``)."""
    spec = head_spec(learn)
    classifier = classifier_of(learn.model)
    spatial = getattr(classifier.head, "spatial", False)
    in_features = head_input_width(classifier.backbone, spatial=spatial)
    return spec.build(in_features=in_features, n_classes=len(learner_classes(learn)))


class ClassifierRetraining(PostStep):
    """Re-initialise the head and retrain it for ``epochs`` (one cycle up to ``lr``) with
    batches drawn by ``sampler``; everything else frozen and in eval mode. The learner's own
    loss is used, without its deferred re-weighting: balanced sampling already re-balances."""

    def __init__(self, *, epochs: int = 10, lr: float = 1e-3, sampler: str = "class-aware") -> None:
        if epochs < 1 or lr <= 0:
            raise ValueError(f"epochs must be >= 1 and lr > 0, got epochs={epochs}, lr={lr}")
        self.epochs, self.lr, self.sampler = epochs, lr, resolve("samplers", sampler)

    def check(self, learn: Learner) -> None:
        classifier_of(learn.model)
        head_spec(learn)
        require_sampled_loader(learn)

    def fit(self, learn: Learner) -> None:
        head = classifier_of(learn.model).head
        head.load_state_dict(fresh_head(learn).state_dict())
        params = list(head.parameters())
        retrain(learn, params, [head], sampler=self.sampler, epochs=self.epochs, lr=self.lr)
