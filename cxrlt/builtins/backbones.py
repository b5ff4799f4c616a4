"""Built-in backbones: a few timm models worth naming; any other timm name works as well."""

from cxrlt.hookspecs import hookimpl

_TIMM_BACKBONE = "cxrlt.model.backbone:timm_backbone"

# (timm name, why one would pick it)
_CURATED = (
    ("resnet18", "Small and quick on a CPU; the default for the embedded data."),
    ("convnext_atto", "The smallest ConvNeXt: the founding paper's family at laptop size."),
    ("convnext_large", "Best backbone of the founding CXR-LT 2026 study (dev mAP 0.522)."),
    ("densenet121", "The classic CheXNet backbone."),
    ("efficientnet_b0", "Light EfficientNet for quick studies."),
)


@hookimpl
def register_backbones(register):
    for name, summary in _CURATED:
        register(name, _TIMM_BACKBONE, summary=summary, bound={"model_name": name})
