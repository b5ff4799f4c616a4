"""Built-in classifier heads, each with the paper its defaults follow and where they differ."""

from cxrlt.hookspecs import hookimpl

_HEADS = (
    ("linear", "LinearHead", "One linear layer on pooled features (optional dropout).", {}),
    (
        "cosine",
        "CosineHead",
        "scale * cosine to class weights, for ldam (Cao et al., NeurIPS 2019).",
        {"paper": "Cao et al., NeurIPS 2019"},
    ),
    (
        "csra",
        "CSRAHead",
        "Class-specific residual attention on the feature map (Zhu & Wu, ICCV 2021).",
        {"paper": "Zhu & Wu, ICCV 2021"},
    ),
    (
        "ml-decoder",
        "MLDecoderHead",
        "Group-query cross-attention decoder (Ridnik et al., WACV 2023).",
        {
            "paper": "Ridnik et al., WACV 2023",
            "deviations": {
                "dim": "256, not the paper's 768: a lighter decoder for tens of classes and "
                "small CPU runs; dim=768 follows the paper",
                "learn_queries": "True: cxrlt learns the queries (n_groups x dim parameters); "
                "the authors' code keeps its random queries fixed, learn_queries=False",
            },
        },
    ),
)


@hookimpl
def register_heads(register):
    for name, cls, summary, metadata in _HEADS:
        register(name, f"cxrlt.model.heads:{cls}", summary=summary, **metadata)
