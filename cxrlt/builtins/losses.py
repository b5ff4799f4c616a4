"""Built-in losses, each with the paper its defaults follow and where they differ from it."""

from cxrlt.hookspecs import hookimpl

_CAO = "Cao et al., NeurIPS 2019"
_MULTI_LABEL_DRW = (
    "class-balanced weights (beta 0.9999, as in the paper) on the positive terms only: the "
    "multi-label form of the paper's per-sample weight on a softmax loss"
)
_LOSSES = (
    ("bce", "BCELoss", "Binary cross-entropy on logits, every class weighted alike.", {}),
    (
        "weighted-bce",
        "WeightedBCELoss",
        "BCE with positive weight (N - n_c) / n_c per class, clipped to max_weight.",
        {},
    ),
    (
        "focal",
        "FocalLoss",
        "Focal loss (Lin et al., ICCV 2017): (1 - p_t)^gamma * BCE.",
        {
            "paper": "Lin et al., ICCV 2017",
            "deviations": {
                "alpha": "None (off), not the paper's 0.25: that value was tuned for dense "
                "detection, where it weights positives 0.25 and negatives 0.75; in long-tailed "
                "multi-label data it would further down-weight the rare positives",
            },
        },
    ),
    (
        "cb",
        "ClassBalancedLoss",
        "Class-balanced BCE by effective number of samples (Cui et al., CVPR 2019).",
        {
            "paper": "Cui et al., CVPR 2019",
            "deviations": {
                "formula": "w_c weights both terms of class c (multi-label); the paper's "
                "sigmoid form weights every class's term by the weight of the image's one label",
            },
        },
    ),
    (
        "asl",
        "AsymmetricLoss",
        "Asymmetric loss, shifted negatives (Ridnik et al., ICCV 2021).",
        {"paper": "Ridnik et al., ICCV 2021"},
    ),
    (
        "ldam",
        "LDAMLoss",
        "Label-distribution-aware margin BCE, scale s (Cao et al., NeurIPS 2019).",
        {
            "paper": _CAO,
            "head": "cosine",
            "deviations": {
                "formula": "BCE(s * (z - y * Delta), y) per class, the multi-label form of the "
                "paper's softmax; s is applied at inference too (sigmoid(s * z))",
            },
        },
    ),
    (
        "drw",
        "DeferredReweightedBCELoss",
        "BCE, class-balanced positive weights from epoch start (deferred re-weighting).",
        {"paper": _CAO, "deviations": {"formula": _MULTI_LABEL_DRW}},
    ),
    (
        "ldam-drw",
        "LDAMDRWLoss",
        "LDAM with deferred re-weighting (Cao et al., NeurIPS 2019); the seed paper's best.",
        {
            "paper": _CAO,
            "head": "cosine",
            "deviations": {"formula": f"LDAM as BCE(s * (z - y * Delta), y); {_MULTI_LABEL_DRW}"},
        },
    ),
    (
        "logit-adjusted",
        "LogitAdjustedBCELoss",
        "BCE with logit(prior) offsets in training only (Menon et al., ICLR 2021).",
        {
            "paper": "Menon et al., ICLR 2021",
            "deviations": {
                "formula": "offsets tau * logit(pi_c) on each class's sigmoid, the multi-label "
                "form of the paper's tau * log(pi_c) on a softmax",
            },
        },
    ),
    (
        "db",
        "DistributionBalancedLoss",
        "Distribution-balanced: re-balanced weights, negative tolerance (Wu et al., ECCV 2020).",
        {
            "paper": "Wu et al., ECCV 2020",
            "deviations": {
                "formula": "an image without positives (r undefined in the paper) gets r = 1, "
                "and the paper's constant focal balance factor is left out",
            },
        },
    ),
)


@hookimpl
def register_losses(register):
    for name, cls, summary, metadata in _LOSSES:
        register(name, f"cxrlt.training.losses:{cls}", summary=summary, **metadata)
