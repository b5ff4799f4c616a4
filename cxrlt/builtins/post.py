"""Built-in post-training steps."""

from cxrlt.hookspecs import hookimpl

_STEPS = (
    (
        "crt",
        "crt:ClassifierRetraining",
        "Retrain a re-initialised head on class-balanced batches (Kang et al., ICLR 2020).",
    ),
    (
        "lws",
        "lws:LearnableWeightScaling",
        "Learn one logit scale per class on class-balanced batches (Kang et al., ICLR 2020).",
    ),
    (
        "tau-norm",
        "tau_norm:TauNormalisation",
        "Weights W_c / ||W_c||^tau, tau chosen on validation (Kang et al., ICLR 2020).",
    ),
    (
        "tta",
        "tta:TestTimeAugmentation",
        "Average logits (or probabilities) over rescaled and optionally flipped views.",
    ),
    (
        "ema",
        "averaging:WeightAveragingStep",
        "A few epochs more at a low rate, keeping the weights' moving average (timm's EMA).",
    ),
    (
        "normal-gating",
        "normal_gating:NormalGating",
        "Findings' p_c times (1 - p_Normal)^alpha (CXR-LT 2026 winner).",
    ),
)


@hookimpl
def register_post(register):
    for name, target, summary in _STEPS:
        register(name, f"cxrlt.post.{target}", summary=summary)
