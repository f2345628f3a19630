"""CPU two-view augmentation: shapes, normalisation, independence of the views, presets, decoding."""

from __future__ import annotations

import io
import pickle

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from hf_simclr.augmentation import AugmentationConfig, augmentation_preset
from hf_simclr.data import ImageViewDataset
from hf_simclr.image_view import to_rgb
from hf_simclr.transforms import (
    EvalTransform,
    ImageDecodeError,
    TwoViewTransform,
    eval_batch_transform,
    two_view_batch_transform,
)

# Every random step off and the crop covering the whole image: the views are the normalised input.
IDENTITY = dict(
    image_size=32,
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    horizontal_flip_p=0.0,
    color_jitter_p=0.0,
    grayscale_p=0.0,
    blur_p=0.0,
)


def random_image(height: int = 32, width: int = 32, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def find_steps(transform, kind: type) -> list:
    """Every step of type `kind` inside nested Compose / RandomApply containers."""
    if isinstance(transform, kind):
        return [transform]
    return [found for step in getattr(transform, "transforms", []) for found in find_steps(step, kind)]


def unnormalize(views: torch.Tensor, config: AugmentationConfig) -> torch.Tensor:
    mean = torch.tensor(config.mean).view(3, 1, 1)
    std = torch.tensor(config.std).view(3, 1, 1)
    return views * std + mean


def test_two_views_shape_dtype_and_differ():
    torch.manual_seed(0)
    config = augmentation_preset("cifar10")
    views = TwoViewTransform(config)(random_image(40, 48))
    assert views.shape == (2, 3, 32, 32)
    assert views.dtype == torch.float32
    assert not torch.allclose(views[0], views[1])
    # Normalised: back in [0, 1] once the mean and std are undone.
    pixels = unnormalize(views, config)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_identity_config_gives_the_normalised_image():
    config = AugmentationConfig(**IDENTITY, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    image = random_image()
    views = TwoViewTransform(config)(image)
    expected = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(unnormalize(views[0], config), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(views[0], views[1])
    torch.testing.assert_close(views[0], EvalTransform(config)(image))


def test_views_are_drawn_independently():
    """Each view flips on its own coin: all four (flip, flip) combinations occur, about equally."""
    torch.manual_seed(0)
    config = AugmentationConfig(**{**IDENTITY, "horizontal_flip_p": 0.5})
    image = random_image()
    transform, unflipped = TwoViewTransform(config), EvalTransform(config)(image)
    counts = np.zeros((2, 2), dtype=int)
    for _ in range(200):
        views = transform(image)
        flipped = [not torch.allclose(view, unflipped) for view in views]
        counts[int(flipped[0]), int(flipped[1])] += 1
    assert counts.min() >= 30, counts  # 50 expected each; shared parameters would give zeros


def test_eval_transform_resizes_and_is_deterministic():
    config = augmentation_preset("cifar10")
    transform = EvalTransform(config)
    image = random_image(40, 64)
    view = transform(image)
    assert view.shape == (3, 32, 32)
    torch.testing.assert_close(view, transform(image))


def non_rgb_image(mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.full((36, 36), 257 * 100, dtype=np.uint16))
    if mode == "F":
        return Image.fromarray(np.full((36, 36), 0.5, dtype=np.float32))
    return random_image(36, 36).convert(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "CMYK", "P", "1", "I;16", "I", "F"])
def test_non_rgb_images_are_converted(mode):
    image = non_rgb_image(mode)
    assert image.mode == mode
    assert to_rgb(image).mode == "RGB"
    assert TwoViewTransform(augmentation_preset("cifar10"))(image).shape == (2, 3, 32, 32)
    assert EvalTransform(augmentation_preset("cifar10"))(image).shape == (3, 32, 32)


def test_high_depth_images_are_scaled_not_clipped():
    sixteen_bit = Image.fromarray(np.full((4, 4), 257 * 100, dtype=np.uint16))
    assert np.asarray(to_rgb(sixteen_bit))[0, 0].tolist() == [100, 100, 100]
    floating = Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32))
    assert np.asarray(to_rgb(floating))[0, 0].tolist() == [128, 128, 128]


def test_presets():
    cifar = augmentation_preset("cifar10")
    assert cifar.image_size == 32 and cifar.blur_p == 0
    assert find_steps(TwoViewTransform(cifar).augment, v2.GaussianBlur) == []
    stl = augmentation_preset("stl10")
    assert stl.image_size == 96 and stl.blur_p == 0.5
    assert stl.blur_kernel_size == 11  # odd, about 10% of 96 (paper, Appendix A)
    (blur,) = find_steps(TwoViewTransform(stl).augment, v2.GaussianBlur)
    assert list(blur.kernel_size) == [11, 11]
    assert TwoViewTransform(stl)(random_image(120, 100)).shape == (2, 3, 96, 96)
    assert augmentation_preset("cifar10", image_size=40).image_size == 40


def test_unknown_preset_and_override_errors():
    with pytest.raises(ValueError, match=r"preset='cifar100' is not a preset; choose one of \["):
        augmentation_preset("cifar100")
    with pytest.raises(ValueError, match="Unknown augmentation parameters"):
        augmentation_preset("cifar10", jitter=0.4)


def image_dataset(num_rows: int, bad_row: int | None = None) -> datasets.Dataset:
    images = [{"bytes": png_bytes(random_image(seed=i)), "path": None} for i in range(num_rows)]
    if bad_row is not None:
        images[bad_row] = {"bytes": b"not an image", "path": None}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"image": images, "label": list(range(num_rows))}, features=features)


def test_batch_transforms_draw_views_on_access():
    config = augmentation_preset("cifar10")
    dataset = image_dataset(4).with_transform(two_view_batch_transform(config, label_column="label"))
    first, second = dataset[0:2], dataset[0:2]
    assert [view.shape for view in first["pixel_values"]] == [(2, 3, 32, 32)] * 2
    assert first["label"] == [0, 1]
    assert not torch.allclose(first["pixel_values"][0], second["pixel_values"][0])  # not cached

    evaluation = image_dataset(4).with_transform(eval_batch_transform(config))
    batch = evaluation[1:3]
    assert [view.shape for view in batch["pixel_values"]] == [(3, 32, 32)] * 2
    assert batch["label"] == [1, 2]
    torch.testing.assert_close(batch["pixel_values"][0], evaluation[1:3]["pixel_values"][0])


def test_undecodable_image_names_its_row():
    config = augmentation_preset("cifar10")
    dataset = image_dataset(20, bad_row=17)
    views = ImageViewDataset(dataset, two_view_batch_transform(config, label_column="label"))
    assert views[16]["pixel_values"].shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"row 17 of the dataset: cannot decode image \(.*\); remove or fix"):
        views[17]
    loader = torch.utils.data.DataLoader(views, batch_size=8)  # batches read through __getitems__
    with pytest.raises(ValueError, match="row 17 of the dataset"):
        list(loader)
    # Through with_transform the transform sees only the batch: it names the image's position there.
    batch = dataset.cast_column("image", datasets.Image(decode=False))[15:19]
    with pytest.raises(ImageDecodeError, match="image 2 of the batch"):
        two_view_batch_transform(config)(batch)


def test_view_dataset_in_dataloader_workers():
    config = augmentation_preset("cifar10")
    views = ImageViewDataset(image_dataset(12), two_view_batch_transform(config, label_column="label"))
    restored = pickle.loads(pickle.dumps(views))  # what a spawned worker receives
    assert restored[3]["label"] == 3
    loader = torch.utils.data.DataLoader(views, batch_size=4, num_workers=1)
    batches = list(loader)
    assert [batch["pixel_values"].shape for batch in batches] == [(4, 2, 3, 32, 32)] * 3
    assert torch.cat([batch["label"] for batch in batches]).tolist() == list(range(12))
