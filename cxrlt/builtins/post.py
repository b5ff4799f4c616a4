"""Built-in post-training steps, each with the paper its defaults follow and where they differ."""

from cxrlt.hookspecs import hookimpl

_KANG = "Kang et al., ICLR 2020"
_ADAM_LR = (
    "1e-3 for Adam, cxrlt's optimiser, with a one-cycle schedule; the paper retrains with "
    "SGD at ImageNet-scale rates"
)
_STEPS = (
    (
        "crt",
        "crt:ClassifierRetraining",
        "Retrain a re-initialised head on class-balanced batches (Kang et al., ICLR 2020).",
        {"paper": _KANG, "deviations": {"lr": _ADAM_LR}},
    ),
    (
        "lws",
        "lws:LearnableWeightScaling",
        "Learn one logit scale per class on class-balanced batches (Kang et al., ICLR 2020).",
        {"paper": _KANG, "deviations": {"lr": _ADAM_LR}},
    ),
    (
        "tau-norm",
        "tau_norm:TauNormalisation",
        "Weights W_c / ||W_c||^tau, tau chosen on validation (Kang et al., ICLR 2020).",
        {
            "paper": _KANG,
            "deviations": {
                "bias": "kept (True): with one sigmoid per class the bias holds the class's "
                "prior; the paper's classifier has none (bias=False zeroes it)",
                "metric": "validation loss, not accuracy: rescaling a class's logits leaves its "
                "ranking, hence mAP, unchanged in multi-label classification",
            },
        },
    ),
    (
        "tta",
        "tta:TestTimeAugmentation",
        "Average logits (or probabilities) over rescaled and optionally flipped views.",
        {},
    ),
    (
        "ema",
        "averaging:WeightAveragingStep",
        "A few epochs more at a low rate, keeping the weights' moving average (timm's EMA).",
        {},
    ),
    (
        "normal-gating",
        "normal_gating:NormalGating",
        "Findings' p_c times (1 - p_Normal)^alpha (CXR-LT 2026 winner).",
        {"paper": "CXR-LT 2026 Task 1 development-phase winner"},
    ),
    (
        "study-views",
        "study_views:StudyViews",
        "Merge the predictions of a study's images (views) by mean, max or projection weight.",
        {},
    ),
)


@hookimpl
def register_post(register):
    for name, target, summary, metadata in _STEPS:
        register(name, f"cxrlt.post.{target}", summary=summary, **metadata)
