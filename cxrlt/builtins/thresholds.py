"""Built-in threshold policies."""

from cxrlt.hookspecs import hookimpl

_MODULE = "cxrlt.calibration.thresholds"


@hookimpl
def register_thresholds(register):
    register(
        "fixed",
        f"{_MODULE}:FixedThreshold",
        summary="The same threshold for every class (default 0.5).",
    )
    register(
        "f1-per-class",
        f"{_MODULE}:PerClassF1Threshold",
        summary="Per-class F1-optimal threshold (SCut, Yang, SIGIR 2001), rare classes global.",
        paper="Yang, SIGIR 2001",
        deviations={
            "min_positives": "5: a class with fewer validation positives takes the global "
            "F1-optimal threshold, since a per-class optimum on so few positives is noise",
        },
    )
    register(
        "f1-global",
        f"{_MODULE}:GlobalF1Threshold",
        summary="One threshold maximising the mean per-class F1 (Lipton et al., 2014).",
        paper="Lipton et al., 2014",
    )
    register(
        "prevalence",
        f"{_MODULE}:PrevalenceThreshold",
        summary="Predicted-positive rate per class = training prevalence (PCut, Yang, SIGIR 2001).",
        paper="Yang, SIGIR 2001",
    )
