"""torchxrayvision's chest X-ray networks as cxrlt backbones.

Only the feature extractors are used: xrv's ``forward`` resizes every input to the weights'
resolution (``fix_resolution``: 224 or 512 px) and ends in its own 18-pathology classifier
with operating-point rescaling (``op_threshs``); cxrlt trains its own head at its own image
size, so the wrapper calls the convolutional layers directly and drops the rest.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import pickle
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cxrlt import CxrltError

DENSENET_WEIGHTS = "densenet121-res224-all"
RESNET_WEIGHTS = "resnet50-res512-all"

# xrv's pixel range: xrv.datasets.normalize maps [0, maxval] to [-1024, 1024].
XRV_MIN, XRV_MAX = -1024.0, 1024.0


def _xrv() -> Any:
    """torchxrayvision, imported without the process-wide ``warnings.filterwarnings("ignore")``
    its ``models`` module runs on import (it would silence every warning of the run)."""
    with warnings.catch_warnings():
        import torchxrayvision

    return torchxrayvision


class XRVBackbone(nn.Module):
    """A torchxrayvision feature extractor: (B, 1, H, W) images in [0, 1] in, pooled
    (B, num_features) features out of ``forward``, the (B, num_features, h, w) map out of
    ``forward_features`` (for spatial heads), at any input size (no resizing).

    Input scaling: xrv's weights were trained on images scaled to [-1024, 1024], cxrlt's
    loaders give [0, 1] (uint8 / 255). The module maps [0, 1] linearly onto [-1024, 1024]
    itself, and its ``pretrained_cfg`` (mean 0, std 1) turns CXRClassifier's ImageNet-style
    normalisation, which would otherwise run first, into the identity: the backbone sees
    cxrlt's [0, 1] images whether called alone or inside a CXRClassifier.
    """

    num_features: int

    def __init__(self, *, name: str, weights: str, resolution: int) -> None:
        super().__init__()
        self.name, self.weights = name, weights
        self.pretrained_cfg = {
            "mean": (0.0,),
            "std": (1.0,),
            "input_size": (1, resolution, resolution),  # the weights' training size
            "tag": weights,
        }

    @staticmethod
    def to_xrv_range(images: torch.Tensor) -> torch.Tensor:
        """[0, 1] to xrv's [-1024, 1024]."""
        return images * (XRV_MAX - XRV_MIN) + XRV_MIN

    def body(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The (B, num_features, h, w) map, after the final activation (as timm's)."""
        return self.body(self.to_xrv_range(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.forward_features(images), 1).flatten(1)

    def load_feature_state(self, state: Mapping[str, torch.Tensor]) -> tuple[list, list]:
        """Load a checkpoint's feature weights; returns (missing, unexpected) key names."""
        raise NotImplementedError


class XRVDenseNet(XRVBackbone):
    """xrv's DenseNet-121 features (``model.features``), then ReLU, as xrv's ``features2``."""

    num_features = 1024

    def __init__(self, *, weights: str) -> None:
        super().__init__(name="xrv-densenet121", weights=weights, resolution=224)
        self.features = _xrv().models.DenseNet(weights=None).features

    @property
    def explain_layer(self) -> nn.Module:
        """Grad-CAM's layer (cxrlt explain): the last dense block's 1024-channel map."""
        return self.features.norm5

    def body(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu(self.features(images))

    def load_feature_state(self, state: Mapping[str, torch.Tensor]) -> tuple[list, list]:
        prefix = "features."
        feature_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        result = self.features.load_state_dict(feature_state, strict=False)
        return [prefix + k for k in result.missing_keys], [
            prefix + k for k in result.unexpected_keys
        ]


class XRVResNet(XRVBackbone):
    """xrv's ResNet-50 (torchvision's, with a 1-channel stem) up to ``layer4``."""

    num_features = 2048

    def __init__(self, *, weights: str) -> None:
        import torchvision

        super().__init__(name="xrv-resnet50", weights=weights, resolution=512)
        model = torchvision.models.resnet50(weights=None)
        model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        model.fc = nn.Identity()  # xrv's classifier is not used
        self.model = model

    def body(self, images: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(images))))
        return m.layer4(m.layer3(m.layer2(m.layer1(x))))

    def load_feature_state(self, state: Mapping[str, torch.Tensor]) -> tuple[list, list]:
        feature_state = {
            k: v for k, v in state.items() if not k.startswith("fc.") and k != "op_threshs"
        }
        result = self.model.load_state_dict(feature_state, strict=False)
        return list(result.missing_keys), list(result.unexpected_keys)


def xrv_densenet121(
    *,
    in_chans: int = 1,
    pretrained: bool = False,
    weights: str = DENSENET_WEIGHTS,
    weights_path: str | None = None,
    allow_pickle: bool = False,
) -> XRVBackbone:
    """torchxrayvision's DenseNet-121 (1024 features).

    ``pretrained`` loads the xrv ``weights`` (downloaded once into ~/.torchxrayvision/
    models_data/), or the file ``weights_path`` when given; without ``pretrained`` neither
    the network nor the file is touched (a reloaded run brings its own weights).
    ``allow_pickle`` lets a file that is a whole pickled module be unpickled (xrv's DenseNet
    downloads are): unpickling runs any code the file holds, so it is off unless asked for.
    """
    return _build(
        "xrv-densenet121",
        XRVDenseNet,
        "densenet121-",
        in_chans,
        pretrained,
        weights,
        weights_path,
        allow_pickle,
    )


def xrv_resnet50(
    *,
    in_chans: int = 1,
    pretrained: bool = False,
    weights: str = RESNET_WEIGHTS,
    weights_path: str | None = None,
    allow_pickle: bool = False,
) -> XRVBackbone:
    """torchxrayvision's ResNet-50 (2048 features); parameters as :func:`xrv_densenet121`."""
    return _build(
        "xrv-resnet50",
        XRVResNet,
        "resnet50-",
        in_chans,
        pretrained,
        weights,
        weights_path,
        allow_pickle,
    )


def _build(
    name: str,
    cls: type[XRVBackbone],
    family: str,
    in_chans: int,
    pretrained: bool,
    weights: str,
    weights_path: str | None,
    allow_pickle: bool,
) -> XRVBackbone:
    if in_chans != 1:
        raise CxrltError(
            f"The backbone {name!r} takes greyscale images only (in_chans=1), got "
            f"in_chans={in_chans}: torchxrayvision's networks have a 1-channel stem."
        )
    check_weights_name(name, family, weights)
    backbone = cls(weights=weights)
    if pretrained:
        path, cached = weights_file(name, weights, weights_path)
        load_weights(backbone, path, weights, cached=cached, allow_pickle=allow_pickle)
    return backbone


def weights_names(family: str) -> list[str]:
    """xrv's weights names of one architecture (``densenet121-``, ``resnet50-``)."""
    return [key for key in _xrv().models.model_urls if key.startswith(family)]


def check_weights_name(name: str, family: str, weights: str) -> None:
    accepted = weights_names(family)
    if weights in accepted:
        return
    close = [w for w in accepted if weights and weights in w]
    close = close or difflib.get_close_matches(weights, accepted, n=2, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise CxrltError(
        f"Unknown torchxrayvision weights {weights!r} for the backbone {name!r}.{hint} "
        f"Accepted: {', '.join(accepted)}."
    )


def _source(weights: str) -> tuple[str, Path]:
    """The URL xrv downloads ``weights`` from, and the folder it caches them in."""
    xrv = _xrv()
    return xrv.models.model_urls[weights]["weights_url"], Path(xrv.utils.get_cache_dir())


def weights_file(name: str, weights: str, weights_path: str | None) -> tuple[Path, bool]:
    """The file holding the weights, and whether it is xrv's cached download. A missing
    ``weights_path`` or a failed download becomes a CxrltError saying what to do."""
    url, folder = _source(weights)
    filename = os.path.basename(url)
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise CxrltError(
                f"The weights file {str(path)!r} (weights_path of the backbone {name!r}) does "
                f"not exist. Give the path of a copy of the torchxrayvision weights "
                f"{weights!r} ({filename}, from {url}), or leave weights_path out to use "
                f"torchxrayvision's download cache {folder}, or train from scratch with "
                f"'{name}:pretrained=False'."
            )
        return path, False
    cached = folder / filename
    if cached.is_file():
        return cached, True
    try:
        with _download_lock(cached), contextlib.redirect_stdout(sys.stderr):
            return Path(_xrv().models.get_weights(weights)), True  # notes, progress: stderr
    except Exception as error:  # noqa: BLE001 - requests/OSError/...: one message, one fix
        reason = (str(error).splitlines() or [""])[0].split(" with url:")[0]
        reason = reason if len(reason) <= 120 else reason[:117] + "..."
        raise CxrltError(
            f"Cannot fetch the pretrained torchxrayvision weights {weights!r} for the backbone "
            f"{name!r} ({type(error).__name__}: {reason}). torchxrayvision downloads them "
            f"from {url} into {folder}; this machine may be offline. Fix: copy that file "
            f"into {folder} (e.g. `wget {url}` on a machine with internet), or point at a "
            f"local copy with '{name}:weights_path=/path/to/{filename}', or train from "
            f"scratch with '{name}:pretrained=False' (cxrlt run --no-pretrained)."
        ) from None


@contextlib.contextmanager
def _download_lock(path: Path) -> Iterator[None]:
    """One process at a time downloads ``path`` (torchrun starts one per GPU, all sharing the
    cache; the others then find the file). No lock where fcntl is missing (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class PickledWeights(Exception):
    """The weights file is a pickled module, and unpickling it was not allowed."""


def read_state(path: Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file, a saved state dict, or, with ``allow_pickle``
    and a warning, a pickled module (xrv's DenseNet files are whole pickled models, as xrv
    itself loads them). Without it a pickled module raises :class:`PickledWeights` unread."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # objects beyond tensors: a pickled module
        if not allow_pickle:
            raise PickledWeights(str(path)) from None
        warnings.warn(
            f"Unpickling the weights file {path} (allow_pickle=True): unpickling runs any code "
            "the file holds, so allow it only for a file you trust, such as torchxrayvision's "
            "own download.",
            stacklevel=2,
        )
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, nn.Module):
        for module in obj.modules():  # xrv's patch for modules pickled by old torch
            if not hasattr(module, "_non_persistent_buffers_set"):
                module._non_persistent_buffers_set = set()
        obj = obj.state_dict()
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise TypeError(f"it holds a {type(obj).__name__}, not a state dict or a module")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in ("module.", "model."):  # DataParallel; xrv's ResNet wrapper
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_weights(
    backbone: XRVBackbone, path: Path, weights: str, *, cached: bool, allow_pickle: bool = False
) -> None:
    """Load the feature weights of ``path`` into ``backbone``, or say why they do not fit."""
    url, _ = _source(weights)
    if cached:
        fix = f"Delete it so that torchxrayvision downloads it again from {url}"
    else:
        fix = f"Give a copy of the torchxrayvision weights {weights!r} from {url}"
    fix += f", or train from scratch with '{backbone.name}:pretrained=False'."
    try:
        state = read_state(path, allow_pickle=allow_pickle)
        missing, unexpected = backbone.load_feature_state(state)
    except PickledWeights:
        raise CxrltError(
            f"The weights file {str(path)!r} for the backbone {backbone.name!r} is a pickled "
            "module (torchxrayvision's DenseNet downloads are), and unpickling runs any code "
            "the file holds, so it was not loaded. If you trust the file (torchxrayvision's "
            f"own, from {url}), allow it with '{backbone.name}:allow_pickle=True'; else give "
            f"weights_path a state dict or .safetensors file, or train from scratch with "
            f"'{backbone.name}:pretrained=False'."
        ) from None
    except Exception as error:  # noqa: BLE001 - truncated, foreign or wrong-shaped file
        reason = (str(error).splitlines() or [""])[0][:200]
        raise CxrltError(
            f"The weights file {str(path)!r} for the backbone {backbone.name!r} cannot be "
            f"loaded ({type(error).__name__}: {reason}): it is incomplete or not a "
            f"torchxrayvision {weights!r} checkpoint. {fix}"
        ) from None
    if missing or unexpected:
        raise CxrltError(
            f"The weights file {str(path)!r} does not hold {backbone.name!r} weights: "
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:2]}). {fix}"
        )
