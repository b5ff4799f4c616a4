"""The plugin module named in the ``cxrlt`` entry-point group: import-cheap, lazy target."""

from cxrlt.hookspecs import hookimpl


@hookimpl
def register_losses(register):
    register(
        "poly1",
        "cxrlt_polyloss.loss:Poly1Loss",
        summary="Poly-1 loss: BCE plus epsilon * (1 - p_t) (Leng et al., ICLR 2022).",
    )
