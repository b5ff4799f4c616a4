"""The module the ``cxrlt`` entry point names. cxrlt imports it at start-up, so it imports
neither torch nor transformers: the target is a lazy ``"module:attr"`` string."""

from cxrlt import hookimpl


@hookimpl
def register_backbones(register):
    register(
        "rad-dino",
        "cxrlt_raddino.backbone:rad_dino",
        summary="RAD-DINO: a DINOv2 ViT-B/14 trained on chest X-rays (microsoft/rad-dino); "
        "CLS token as pooled features, patch tokens for spatial heads; 768 features.",
        paper="Pérez-García et al., Exploring scalable medical image encoders beyond text "
        "supervision, Nature Machine Intelligence 2025",
    )
