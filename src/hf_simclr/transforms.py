"""SimCLR's data augmentation recipe (Chen et al. 2020, Appendix A) as CPU two-view transforms.

`AugmentationConfig` (`augmentation.py`) is the one home of the recipe's parameters and their ranges; the
CPU pipeline here and the batched GPU pipeline in `gpu_transforms.py` both read it, so the two stay the
same recipe.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import v2

from .augmentation import AugmentationConfig
from .image_view import eval_view, to_model_input, upright_rgb


class ImageDecodeError(ValueError):
    """An image of a batch could not be decoded.

    Args:
        position (`int`): position of the image within the batch that was being transformed.
        reason (`str`): what PIL reported.
    """

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(
            f"image {position} of the batch: cannot decode image ({reason}); remove or fix that row"
        )
        self.position = position
        self.reason = reason


def decode_image(value: Image.Image | dict[str, Any]) -> Image.Image:
    """Decode one value of a `datasets.Image` column to an RGB PIL image, upright ([`upright_rgb`]).

    The pixels are those `datasets` decodes (EXIF orientation applied) and `transformers`' `load_image`
    gives, converted to RGB as the package converts every mode.

    Args:
        value: a PIL image (column decoded by `datasets`) or a `{"bytes": ..., "path": ...}` dict
            (column cast to `datasets.Image(decode=False)`).

    Raises:
        ValueError: if the bytes or file are not a readable image (the message holds PIL's reason).
    """
    if isinstance(value, Image.Image):
        return upright_rgb(value)
    try:
        source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]
        image = Image.open(source)
        image.load()  # decode now, so a truncated file fails here and not later in a transform
    except Exception as error:
        raise ValueError(f"{type(error).__name__}: {error}") from error
    return upright_rgb(image)


def _normalize(config: AugmentationConfig) -> list[Callable]:
    """PIL image -> float tensor (3, S, S) in [0, 1] -> normalised by the config's mean and std."""
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(config.mean, config.std)]


class TwoViewTransform:
    """Two independently augmented views of one image, the input pair of SimCLR's loss.

    The recipe of Chen et al. 2020, Appendix A: random resized crop, horizontal flip, color jitter
    applied with probability `color_jitter_p`, random grayscale, and (only when `blur_p > 0`)
    Gaussian blur. The geometric and color steps run on the PIL image (2-3x faster than on tensors
    at 32px); the result is then scaled to [0, 1] and normalised.

    Args:
        config (`AugmentationConfig`): the recipe's parameters.
    """

    def __init__(self, config: AugmentationConfig) -> None:
        self.config = config
        steps = [
            v2.RandomResizedCrop(
                config.image_size, scale=config.crop_scale, ratio=config.crop_ratio, antialias=True
            ),
            v2.RandomHorizontalFlip(config.horizontal_flip_p),
            v2.RandomApply([v2.ColorJitter(*config.color_jitter)], p=config.color_jitter_p),
            v2.RandomGrayscale(p=config.grayscale_p),
        ]
        if config.blur_p > 0:
            blur = v2.GaussianBlur(config.blur_kernel_size, sigma=config.blur_sigma)
            steps.append(v2.RandomApply([blur], p=config.blur_p))
        self.augment = v2.Compose(steps + _normalize(config))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Return the two views, a float tensor of shape (2, 3, S, S) with S = `config.image_size`."""
        image = upright_rgb(image)
        return torch.stack([self.augment(image), self.augment(image)])


class FinetuneTransform:
    """The training view of fine-tuning: random resized crop and horizontal flip, no colour distortion.

    Chen et al. 2020 (Appendix B.5) fine-tune on a fraction of the labels with random crops (resized) and
    left-right flips only: the colour distortions that contrastive learning needs are left out.

    Args:
        config (`AugmentationConfig`): `image_size`, `crop_scale`, `crop_ratio`, `horizontal_flip_p`,
            `mean` and `std` are read; the colour and blur fields are not.
    """

    def __init__(self, config: AugmentationConfig) -> None:
        self.config = config
        self.transform = v2.Compose(
            [
                v2.RandomResizedCrop(
                    config.image_size, scale=config.crop_scale, ratio=config.crop_ratio, antialias=True
                ),
                v2.RandomHorizontalFlip(config.horizontal_flip_p),
                *_normalize(config),
            ]
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Return one view, a float tensor of shape (3, S, S) with S = `config.image_size`."""
        return self.transform(upright_rgb(image))


class EvalTransform:
    """The deterministic evaluation view of one image, normalised: [`eval_view`] + [`to_model_input`].

    Args:
        config (`AugmentationConfig`): only `image_size`, `mean` and `std` are read.
    """

    def __init__(self, config: AugmentationConfig) -> None:
        self.config = config

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Return the view, a float tensor of shape (3, S, S) with S = `config.image_size`."""
        pixels = torch.from_numpy(eval_view(image, self.config.image_size))
        return to_model_input(pixels[None], self.config.mean, self.config.std)[0]


class ImageBatchTransform:
    """Maps a batch of `datasets` rows to model inputs, for `datasets.Dataset.with_transform`.

    It runs on every access (in DataLoader workers too), so random views are drawn anew each epoch
    and never cached. It is a plain class, so it pickles into spawned workers.

    Args:
        view_transform (`Callable`): PIL image -> tensor, e.g. `TwoViewTransform` or `EvalTransform`.
        image_column (`str`): column of images, decoded (PIL) or not (`{"bytes", "path"}` dicts).
        label_column (`str`, *optional*): column copied to the output's `"label"`; None drops labels.
    """

    def __init__(
        self, view_transform: Callable, image_column: str = "image", label_column: str | None = None
    ) -> None:
        self.view_transform = view_transform
        self.image_column = image_column
        self.label_column = label_column

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        """Return `{"pixel_values": [one tensor per row], "label": [...]}` ("label" only if asked for).

        Raises:
            ImageDecodeError: if an image cannot be decoded; `position` says which one of the batch.
        """
        for column in (self.image_column, self.label_column):
            if column is not None and column not in batch:
                raise ValueError(f"column {column!r} not in the batch's columns {sorted(batch)}.")
        pixel_values = []
        for position, value in enumerate(batch[self.image_column]):
            try:
                image = decode_image(value)
            except ValueError as error:
                raise ImageDecodeError(position, str(error)) from error
            pixel_values.append(self.view_transform(image))
        output = {"pixel_values": pixel_values}
        if self.label_column is not None:
            output["label"] = list(batch[self.label_column])
        return output


def two_view_batch_transform(
    config: AugmentationConfig, image_column: str = "image", label_column: str | None = None
) -> ImageBatchTransform:
    """Batch transform giving `pixel_values` of shape (2, 3, S, S) per row: SimCLR's two views."""
    return ImageBatchTransform(TwoViewTransform(config), image_column, label_column)


def eval_batch_transform(
    config: AugmentationConfig, image_column: str = "image", label_column: str | None = "label"
) -> ImageBatchTransform:
    """Batch transform giving `pixel_values` of shape (3, S, S) per row and the label, for probes."""
    return ImageBatchTransform(EvalTransform(config), image_column, label_column)
