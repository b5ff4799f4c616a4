"""OpenCLIP image-text models: any OpenCLIP architecture with a pretrained tag or a local
checkpoint file, ``hf-hub:`` models (WhyXrayCLIP, BiomedCLIP) and ``local-dir:`` folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrlt.errors import CxrltError

_OPEN_CLIP_MODEL = f"{__name__}:open_clip_model"
_SCHEMAS = ("hf-hub:", "local-dir:")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth")  # what OpenCLIP looks for in a folder
INSTALL_HINT = "pip install open-clip-torch (or pip install 'cxrlt[zero-shot]')"


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError:
        raise CxrltError(
            f"Zero-shot models need the open-clip-torch package: {INSTALL_HINT}."
        ) from None
    return open_clip


class OpenClipModel:
    """An OpenCLIP model with its own image preprocessing and tokenizer (an
    :class:`~cxrlt.zero_shot.ImageTextModel`)."""

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any) -> None:
        self.model, self.preprocess, self.tokenizer = model.eval(), preprocess, tokenizer
        size = model.visual.image_size
        self.image_size = int(size if isinstance(size, int) else max(size))
        self.logit_scale = float(model.logit_scale.detach().exp())
        self.device = next(model.parameters()).device

    def to(self, device: Any) -> OpenClipModel:
        self.model.to(device)
        self.device = device
        return self

    def encode_images(self, pixels: np.ndarray) -> Any:
        import torch
        from PIL import Image

        # The model's own transforms, on the 3-channel image its pretraining saw.
        batch = torch.stack(
            [self.preprocess(Image.fromarray(np.asarray(p)).convert("RGB")) for p in pixels]
        )
        with torch.no_grad():
            features = self.model.encode_image(batch.to(self.device))
        return torch.nn.functional.normalize(features.float(), dim=-1)

    def encode_texts(self, texts: Sequence[str]) -> Any:
        import torch

        with torch.no_grad():
            features = self.model.encode_text(self.tokenizer(list(texts)).to(self.device))
        return torch.nn.functional.normalize(features.float(), dim=-1)


def _ways_out(model_name: str) -> str:
    if model_name.startswith("local-dir:"):
        return (
            "Check that open_clip_config.json's model_cfg is a valid OpenCLIP configuration "
            "and that the weights in the folder were saved from that model."
        )
    return (
        f"This machine may be offline, or {model_name!r} may not exist. Download the model once "
        "where there is a network (the Hugging Face cache, HF_HOME, is then used offline), or "
        "give it from disk: 'local-dir:FOLDER' (a folder with open_clip_config.json and the "
        "weights, as hf-hub repositories hold them) or 'ARCH:pretrained=FILE' (an OpenCLIP "
        "architecture with a checkpoint file)."
    )


def _check_weights(open_clip: Any, model_name: str, pretrained: str | None) -> None:
    """An architecture name needs weights: a tag OpenCLIP knows or an existing file."""
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    listed = f"Tags of {model_name}: {', '.join(tags)}." if tags else ""
    if pretrained is None:
        raise CxrltError(
            f"The image-text model {model_name!r} needs weights: a random model scores nothing. "
            f"Give {model_name}:pretrained=TAG or {model_name}:pretrained=FILE. {listed}"
        )
    if pretrained not in tags and not Path(pretrained).expanduser().is_file():
        raise CxrltError(
            f"{model_name}:pretrained={pretrained}: neither a pretrained tag of {model_name} "
            f"nor an existing checkpoint file. {listed or 'Give the path of a checkpoint file.'}"
        )


def _check_folder(model_name: str, folder: Path) -> None:
    """A ``local-dir:`` folder holds a config and weights (OpenCLIP would build a random model
    from a config alone)."""
    if not folder.is_dir():
        raise CxrltError(
            f"{model_name!r}: the folder {folder} does not exist. Give a folder laid out as an "
            "OpenCLIP hf-hub repository (open_clip_config.json and the weights)."
        )
    has_config = (folder / "open_clip_config.json").is_file()
    has_weights = any(next(folder.glob(f"*{suffix}"), None) for suffix in _WEIGHT_SUFFIXES)
    if not (has_config and has_weights):
        lacks = "open_clip_config.json" if not has_config else "weights"
        raise CxrltError(
            f"{model_name!r}: {folder} holds no {lacks}. Give a folder laid out as an OpenCLIP "
            "hf-hub repository: open_clip_config.json and the weights "
            f"(open_clip_pytorch_model.bin, or any {', '.join(_WEIGHT_SUFFIXES)} file)."
        )


def open_clip_model(model_name: str, *, pretrained: str | None = None) -> OpenClipModel:
    """An OpenCLIP model with its preprocessing and tokenizer. ``pretrained`` is a tag
    (``laion2b_s34b_b79k``) or a checkpoint file, for architecture names only: ``hf-hub:`` and
    ``local-dir:`` names carry their weights."""
    open_clip = _open_clip()
    has_schema = model_name.startswith(_SCHEMAS)
    if has_schema and pretrained is not None:
        raise CxrltError(
            f"{model_name!r} carries its own weights: leave out pretrained={pretrained!r}."
        )
    if model_name.startswith("local-dir:"):
        _check_folder(model_name, Path(model_name.removeprefix("local-dir:")).expanduser())
    if not has_schema:
        _check_weights(open_clip, model_name, pretrained)
        file = Path(str(pretrained)).expanduser()
        pretrained = str(file) if file.is_file() else pretrained
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained
        )
        tokenizer = open_clip.get_tokenizer(model_name)
    except (OSError, RuntimeError, ValueError) as error:
        raise CxrltError(
            f"Could not load the image-text model {model_name!r} ({type(error).__name__}: "
            f"{error}). {_ways_out(model_name)}"
        ) from error
    return OpenClipModel(model, preprocess, tokenizer)


def open_clip_name(name: str) -> dict[str, Any] | None:
    """Claims ``hf-hub:`` and ``local-dir:`` names and OpenCLIP's architecture names for the
    built-in image-text models' name source."""
    if not name.startswith(_SCHEMAS):
        try:
            import open_clip
        except ImportError:
            return None
        if name not in open_clip.list_models():
            return None
    return {
        "target": _OPEN_CLIP_MODEL,
        "summary": "OpenCLIP model",
        "bound": {"model_name": name},
    }


def open_clip_names() -> list[str]:
    """OpenCLIP's architecture names, suggested for a misspelt model (none without the
    package)."""
    try:
        import open_clip
    except ImportError:
        return []
    return list(open_clip.list_models())
