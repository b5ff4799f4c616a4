"""Built-in calibrators."""

from cxrlt.hookspecs import hookimpl

_MODULE = "cxrlt.calibration.calibrators"


@hookimpl
def register_calibrators(register):
    register(
        "temp-scale",
        f"{_MODULE}:TemperatureScaling",
        summary="One temperature for all classes, sigmoid(z / T), by NLL (Guo et al., ICML 2017).",
        bound={"per_class": False},
        paper="Guo et al., ICML 2017",
        deviations={"formula": "sigmoid(z / T) per class, the multi-label form of softmax(z / T)"},
    )
    register(
        "temp-scale-per-class",
        f"{_MODULE}:TemperatureScaling",
        summary="One temperature per class, sigmoid(z / T_c), by NLL (Guo et al., ICML 2017).",
        bound={"per_class": True},
        paper="Guo et al., ICML 2017",
        deviations={
            "per_class": "one T per class: each class's sigmoid is its own binary problem; the "
            "paper fits a single T for a softmax",
        },
    )
    register(
        "platt",
        f"{_MODULE}:PlattScaling",
        summary="Per class sigmoid(a z + b) by logistic regression (Platt 1999).",
        paper="Platt, 1999",
    )
    register(
        "isotonic",
        f"{_MODULE}:IsotonicCalibration",
        summary="Per class isotonic regression on the logit (Zadrozny & Elkan, KDD 2002).",
        paper="Zadrozny & Elkan, KDD 2002",
    )
