"""Built-in classifier heads."""

from cxrlt.hookspecs import hookimpl


@hookimpl
def register_heads(register):
    register(
        "linear",
        "cxrlt.model.heads:LinearHead",
        summary="One linear layer on pooled features (optional dropout).",
    )
