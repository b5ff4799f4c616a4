"""Built-in classifier heads."""

from cxrlt.hookspecs import hookimpl

_HEADS = (
    ("linear", "LinearHead", "One linear layer on pooled features (optional dropout)."),
    (
        "cosine",
        "CosineHead",
        "scale * cosine to class weights, for ldam (Cao et al., NeurIPS 2019).",
    ),
    (
        "csra",
        "CSRAHead",
        "Class-specific residual attention on the feature map (Zhu & Wu, ICCV 2021).",
    ),
    (
        "ml-decoder",
        "MLDecoderHead",
        "Group-query cross-attention decoder (Ridnik et al., WACV 2023).",
    ),
)


@hookimpl
def register_heads(register):
    for name, cls, summary in _HEADS:
        register(name, f"cxrlt.model.heads:{cls}", summary=summary)
