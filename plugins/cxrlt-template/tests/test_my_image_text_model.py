import numpy as np
import torch
from cxrlt_template.image_text import MyImageTextModel

from cxrlt.testing import check_entry


def test_texts_with_the_same_words_embed_alike_and_others_apart():
    model = MyImageTextModel(width=8)
    same, reordered, other = model.encode_texts(["pleural effusion", "effusion pleural", "bulla"])
    assert torch.allclose(same, reordered) and not torch.allclose(same, other)


def test_images_with_the_same_intensities_embed_alike():
    model = MyImageTextModel(width=8)
    image = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    shuffled = np.random.default_rng(1).permutation(image.ravel()).reshape(image.shape)
    first, second, dark = model.encode_images(np.stack([image, shuffled, image // 4]))
    assert torch.allclose(first, second) and not torch.allclose(first, dark)


def test_keeps_the_image_text_model_contract():
    """Unit-length embeddings of one width for images and texts; unknown parameters refused."""
    check_entry("image_text_models", "my-clip:width=8")
