"""The built-in OpenCLIP entry: local folders and checkpoint files load offline, names resolve
through the name source, and a model that cannot be had offline says the ways out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrlt.errors import CxrltError
from cxrlt.registry import registry, resolve
from cxrlt.testing import check_entry, check_image_text_model_object
from cxrlt.zero_shot import ImageTextModel
from tests.helpers.tiny_clip import TINY_CLIP, write_tiny_clip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny")


def test_a_local_folder_loads_a_model_that_keeps_the_contract(folder):
    model = resolve("image_text_models", f"local-dir:{folder}").build()
    assert isinstance(model, ImageTextModel)
    assert model.image_size == TINY_CLIP["vision_cfg"]["image_size"]
    images = model.encode_images(np.zeros((3, 32, 32), np.uint8))
    texts = model.encode_texts(["a chest X-ray.", "scoliosis."])
    assert images.shape == (3, 16) and texts.shape == (2, 16)
    np.testing.assert_allclose(images.norm(dim=-1).numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(texts.norm(dim=-1).numpy(), 1.0, atol=1e-5)


def test_an_architecture_with_a_checkpoint_file_loads_the_same_weights(folder, tmp_path):
    import open_clip

    config = tmp_path / "cxrlt-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    checkpoint = folder / "open_clip_pytorch_model.bin"
    from_file = resolve("image_text_models", f"cxrlt-tiny-clip:pretrained={checkpoint}").build()
    from_folder = resolve("image_text_models", f"local-dir:{folder}").build()
    text = ["a bulla."]
    np.testing.assert_allclose(
        from_file.encode_texts(text).numpy(), from_folder.encode_texts(text).numpy(), atol=1e-6
    )


def test_an_architecture_without_weights_lists_its_tags():
    with pytest.raises(CxrltError, match=r"needs weights.*Tags of ViT-B-32: openai"):
        resolve("image_text_models", "ViT-B-32").build()
    with pytest.raises(CxrltError, match="neither a pretrained tag of ViT-B-32 nor an existing"):
        resolve("image_text_models", "ViT-B-32:pretrained=/no/such/file.pt").build()


def test_a_folder_without_a_config_or_weights_is_named(folder, tmp_path):
    with pytest.raises(CxrltError, match="the folder .*no-clip does not exist"):
        resolve("image_text_models", f"local-dir:{tmp_path / 'no-clip'}").build()
    with pytest.raises(CxrltError, match="holds no open_clip_config.json"):
        resolve("image_text_models", f"local-dir:{tmp_path}").build()
    (tmp_path / "open_clip_config.json").write_text((folder / "open_clip_config.json").read_text())
    with pytest.raises(CxrltError, match="holds no weights"):  # not a random model, silently
        resolve("image_text_models", f"local-dir:{tmp_path}").build()


def test_a_folder_whose_config_cannot_be_built_says_what_to_check(folder, tmp_path):
    broken = {"model_cfg": {**TINY_CLIP, "vision_cfg": {"image_size": 32, "layers": 1}}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(broken))
    (tmp_path / "open_clip_pytorch_model.bin").write_bytes(
        (folder / "open_clip_pytorch_model.bin").read_bytes()
    )
    with pytest.raises(CxrltError, match="Check that open_clip_config.json's model_cfg"):
        resolve("image_text_models", f"local-dir:{tmp_path}").build()


def test_a_hub_model_offline_names_the_ways_out(monkeypatch):
    import huggingface_hub.constants

    # Offline at once, rather than after the network's retries: the hub reads this at import.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CxrltError) as error:
        resolve("image_text_models", "hf-hub:nobody/no-such-clip").build()
    for way_out in ("offline", "local-dir:FOLDER", "ARCH:pretrained=FILE"):
        assert way_out in str(error.value)
    with pytest.raises(CxrltError, match="carries its own weights"):
        resolve("image_text_models", "whyxrayclip:pretrained=openai").build()


def test_names_resolve_through_the_source_and_misspellings_get_suggestions():
    assert registry("image-text model").get("whyxrayclip").bound["model_name"].startswith("hf-hub")
    assert resolve("image_text_models", "hf-hub:org/repo").entry.bound == {
        "model_name": "hf-hub:org/repo"
    }
    with pytest.raises(CxrltError, match=r"Closest: ViT-B-32.*Any OpenCLIP architecture"):
        resolve("image_text_models", "ViT-B-322")


def test_the_conformance_kit_passes_the_model_and_catches_a_broken_one(folder):
    check_entry("image_text_models", f"local-dir:{folder}")
    model = resolve("image_text_models", f"local-dir:{folder}").build()
    encode = model.encode_texts
    model.encode_texts = lambda texts: 2 * encode(texts)  # no longer unit length
    with pytest.raises(AssertionError, match="embeddings have unit length"):
        check_image_text_model_object(model)
