"""Built-in backbones: a few timm models worth naming, and every other timm name through a
name source (looked up only when a name is not registered, so listing never imports timm)."""

from cxrlt.hookspecs import hookimpl

_MODULE = "cxrlt.model.backbone"

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
        register(name, f"{_MODULE}:timm_backbone", summary=summary, bound={"model_name": name})
    register.source(
        f"{_MODULE}:timm_model",
        names=f"{_MODULE}:timm_model_names",
        note="Any timm model name, hf-hub: id or local-dir: folder works as a backbone too "
        "(see timm.list_models()).",
    )
