"""Built-in losses."""

from cxrlt.hookspecs import hookimpl


@hookimpl
def register_losses(register):
    register(
        "bce",
        "cxrlt.training.losses:BCELoss",
        summary="Binary cross-entropy on logits, every class weighted alike.",
    )
