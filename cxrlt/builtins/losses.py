"""Built-in losses."""

from cxrlt.hookspecs import hookimpl

_LOSSES = (
    ("bce", "BCELoss", "Binary cross-entropy on logits, every class weighted alike."),
    (
        "weighted-bce",
        "WeightedBCELoss",
        "BCE with positive weight (N - n_c) / n_c per class, clipped to max_weight.",
    ),
    ("focal", "FocalLoss", "Focal loss (Lin et al., ICCV 2017): (1 - p_t)^gamma * BCE."),
    (
        "cb",
        "ClassBalancedLoss",
        "Class-balanced BCE by effective number of samples (Cui et al., CVPR 2019).",
    ),
    (
        "asl",
        "AsymmetricLoss",
        "Asymmetric loss, shifted negatives (Ridnik et al., ICCV 2021).",
    ),
    (
        "ldam",
        "LDAMLoss",
        "Label-distribution-aware margin BCE, scale s (Cao et al., NeurIPS 2019).",
    ),
    (
        "drw",
        "DeferredReweightedBCELoss",
        "BCE, class-balanced positive weights from epoch start (deferred re-weighting).",
    ),
    (
        "ldam-drw",
        "LDAMDRWLoss",
        "LDAM with deferred re-weighting (Cao et al., NeurIPS 2019); the seed paper's best.",
    ),
    (
        "logit-adjusted",
        "LogitAdjustedBCELoss",
        "BCE with logit(prior) offsets in training only (Menon et al., ICLR 2021).",
    ),
    (
        "db",
        "DistributionBalancedLoss",
        "Distribution-balanced: re-balanced weights, negative tolerance (Wu et al., ECCV 2020).",
    ),
)


@hookimpl
def register_losses(register):
    for name, cls, summary in _LOSSES:
        register(name, f"cxrlt.training.losses:{cls}", summary=summary)
