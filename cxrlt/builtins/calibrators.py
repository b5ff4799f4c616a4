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
    )
    register(
        "temp-scale-per-class",
        f"{_MODULE}:TemperatureScaling",
        summary="One temperature per class, sigmoid(z / T_c), by NLL (Guo et al., ICML 2017).",
        bound={"per_class": True},
    )
    register(
        "platt",
        f"{_MODULE}:PlattScaling",
        summary="Per class sigmoid(a z + b) by logistic regression (Platt 1999).",
    )
    register(
        "isotonic",
        f"{_MODULE}:IsotonicCalibration",
        summary="Per class isotonic regression on the logit (Zadrozny & Elkan, KDD 2002).",
    )
