"""The module the ``cxrlt`` entry point names. cxrlt imports it at start-up, so it imports
neither torch nor torchxrayvision: the targets are lazy ``"module:attr"`` strings."""

from cxrlt import hookimpl

# (name, target, summary); each summary names the default pretrained weights.
_BACKBONES = (
    (
        "xrv-densenet121",
        "cxrlt_xrv.backbone:xrv_densenet121",
        "torchxrayvision DenseNet-121 pretrained on chest X-rays (default weights "
        "densenet121-res224-all: NIH, PadChest, CheXpert, MIMIC-CXR, ...); 1024 features.",
    ),
    (
        "xrv-resnet50",
        "cxrlt_xrv.backbone:xrv_resnet50",
        "torchxrayvision ResNet-50 pretrained on chest X-rays at 512 px (default weights "
        "resnet50-res512-all); 2048 features.",
    ),
)


@hookimpl
def register_backbones(register):
    for name, target, summary in _BACKBONES:
        register(name, target, summary=summary)
