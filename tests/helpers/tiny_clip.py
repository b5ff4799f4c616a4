"""A tiny, randomly initialised OpenCLIP model saved on disk, for zero-shot tests offline."""

from __future__ import annotations

import json
from pathlib import Path

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def write_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A ``local-dir:`` folder (open_clip_config.json and weights) as hf-hub repositories
    hold OpenCLIP models; returns the folder."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": TINY_CLIP, "preprocess_cfg": {"mean": MEAN, "std": STD}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.save(open_clip.CLIP(**TINY_CLIP).state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder
