"""The image processor saved with every SimCLR model: the evaluation view, as `AutoImageProcessor` gives it.

`SimCLRImageProcessor` turns images into model inputs with the same two functions the probe, the kNN
monitor and the decoded training split use ([`image_view.eval_view`], then [`image_view.to_model_input`]):
turn the image as its EXIF orientation says (as `datasets` and `transformers.image_utils.load_image` do),
convert any PIL mode to RGB, resize the shorter side to `image_size`, crop the center square, scale to
[0, 1] and normalise. So `pipeline("image-feature-extraction", ...)` and `AutoImageProcessor` +
`AutoModel` give the features the published numbers were measured on, for images of any shape and mode.

Like `modeling_simclr.py`, this file imports only numpy, PIL, torch, transformers and its sibling files:
it is copied next to saved models for `trust_remote_code=True`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN
from transformers.image_utils import IMAGENET_DEFAULT_STD as IMAGENET_STD

from .image_view import eval_view, to_model_input


class SimCLRImageProcessor(BaseImageProcessor):
    """Evaluation view of a SimCLR model: RGB, resize the shorter side, center crop, rescale, normalise.

    Args:
        image_size (`int`, *optional*, defaults to 224): side S of the square model input.
        image_mean (`Sequence[float]`, *optional*, defaults to ImageNet's): per-channel mean (RGB, [0, 1] scale).
        image_std (`Sequence[float]`, *optional*, defaults to ImageNet's): per-channel standard deviation.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        image_size: int = 224,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"image_size={image_size!r} must be an integer >= 8 (pixels).")
        if len(image_mean) != 3 or len(image_std) != 3 or min(image_std) <= 0:
            raise ValueError(
                f"image_mean={image_mean} and image_std={image_std} need 3 values each (RGB), std > 0."
            )
        self.image_size = image_size
        self.image_mean = [float(value) for value in image_mean]
        self.image_std = [float(value) for value in image_std]

    @property
    def size(self) -> dict[str, int]:
        """The resize, in the notation of transformers' processors: the shorter side becomes `image_size`."""
        return {"shortest_edge": self.image_size}

    @property
    def crop_size(self) -> dict[str, int]:
        """The center crop, in the notation of transformers' processors."""
        return {"height": self.image_size, "width": self.image_size}

    def __call__(self, images: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, **kwargs)

    def preprocess(self, images: Any, return_tensors: str | None = "pt", **kwargs: Any) -> BatchFeature:
        """Model inputs for one image or a list of images.

        Args:
            images: a PIL image, a uint8 `np.ndarray` of shape `(H, W)` or `(H, W, C)`, or a list of them;
                any PIL mode (L, RGBA, P, I;16, F, ...) is converted to RGB as in training, and a PIL
                image's EXIF orientation is applied (a phone photo opened with `PIL.Image.open` gives the
                pixels `load_image` and `datasets` give).
            return_tensors (`str`, *optional*, defaults to `"pt"`): `"pt"`, `"np"`, or None (lists).

        Returns:
            `BatchFeature` with `pixel_values` of shape `(N, 3, S, S)`, float32.

        Raises:
            TypeError: for an input that is neither a PIL image nor a numpy array.
        """
        if kwargs:
            raise TypeError(
                f"SimCLRImageProcessor takes images and return_tensors only; got {sorted(kwargs)}. The view "
                f"is fixed by the saved image_size, image_mean and image_std."
            )
        batch = images if isinstance(images, (list, tuple)) else [images]
        if not batch:
            raise ValueError("no images given; pass a PIL image or a list of PIL images.")
        pixels = torch.stack(
            [torch.from_numpy(eval_view(as_pil_image(image), self.image_size)) for image in batch]
        )
        pixel_values = to_model_input(pixels, self.image_mean, self.image_std)
        if return_tensors != "pt":
            pixel_values = pixel_values.numpy()
            if return_tensors is None:
                pixel_values = list(pixel_values)
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors)


def as_pil_image(image: Any) -> Image.Image:
    """A PIL image from a PIL image or a numpy array `(H, W)` / `(H, W, C)` (channels last, as PIL's).

    Raises:
        TypeError: for anything else (a path or URL string must be opened first, e.g. with
            `PIL.Image.open` or `transformers.image_utils.load_image`).
    """
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return Image.fromarray(image)
    raise TypeError(
        f"expected a PIL image or a numpy array, got {type(image).__name__}; open files with PIL.Image.open "
        f"(or transformers.image_utils.load_image for paths and URLs) first."
    )


# save_pretrained writes this file and an `auto_map` into every folder's preprocessor_config.json.
SimCLRImageProcessor.register_for_auto_class("AutoImageProcessor")
