"""The evaluation view of an image: what loading a saved model needs to turn any image into model input.

This is the only image code a saved model folder carries for `trust_remote_code` (with the model, config
and image processor files): the training augmentation (`transforms.py`, `gpu_transforms.py`) stays in
the package. [`upright_rgb`] is the one reading of an image's pixels (EXIF orientation applied, as
`datasets`' `Image` feature and `transformers.image_utils.load_image` apply it; then RGB), which every path
that decodes an image goes through; [`eval_view`] is the one definition of the deterministic view used by
the probe, the kNN monitor, the decoded training split and the saved image processor; [`to_model_input`]
scales and normalises it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps
from torchvision.transforms import v2


def upright(image: Image.Image) -> Image.Image:
    """The image turned the way its EXIF orientation says it is seen (phones store photos sideways, with
    orientation 6), as `datasets`' `Image` feature and `transformers.image_utils.load_image` give it.

    An image without an orientation tag is returned as it is; a turned image carries no orientation tag
    any more, so applying this twice (e.g. to an image `datasets` already decoded) changes nothing.
    """
    if image.getexif().get(ExifTags.Base.Orientation) is None:
        return image
    return ImageOps.exif_transpose(image)


def upright_rgb(image: Image.Image) -> Image.Image:
    """The pixels every path of the package reads from an image: [`upright`], then [`to_rgb`].

    `datasets` (`Image` feature), `transformers.image_utils.load_image` and so `pipeline(...)` apply the
    same EXIF orientation, so a phone photo gives the same pixels in training, in the evaluation and in
    users' own tools.
    """
    return to_rgb(upright(image))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode (L, LA, RGBA, CMYK, P, I;16, I, F, ...) to 8-bit RGB.

    Alpha is dropped. 16-bit images (`I;16*`, and `I` with values above 255) are scaled to 8 bits
    instead of being clipped, as PIL's own conversion would do; `F` images are read as [0, 1] when
    their values lie there, else as [0, 255].
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        peak = array.max(initial=0.0)
        if image.mode.startswith("I;16") or (image.mode == "I" and peak > 255):
            array = array / 257.0
        elif image.mode == "F" and peak <= 1.0:
            array = array * 255.0
        image = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8))
    elif image.mode in ("P", "PA"):
        image = image.convert("RGBA")  # a palette's transparency converts cleanly only through RGBA
    return image.convert("RGB")


def eval_view(image: Image.Image, image_size: int) -> np.ndarray:
    """The deterministic evaluation view of one image, as uint8 pixels `(3, S, S)`.

    The image is turned upright and converted to RGB ([`upright_rgb`]); unless it is already `image_size`
    square, its shorter side is resized to `image_size` (bilinear, antialiased) and the center square is
    cropped. This is the one definition of the view used by the probe, the kNN monitor, the decoded
    training split and the saved image processor (`SimCLRImageProcessor`); [`to_model_input`] then scales
    and normalises.

    Args:
        image (`PIL.Image.Image`): any mode PIL reads, with or without an EXIF orientation.
        image_size (`int`): side S of the view.

    Returns:
        `np.ndarray` of dtype uint8 and shape `(3, S, S)`.
    """
    image = upright_rgb(image)
    if image.size != (image_size, image_size):
        image = resize_center_crop(image_size)(image)
    return np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1))


def to_model_input(
    pixels: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """uint8 pixels `(N, 3, S, S)` -> float32 model input: scaled to [0, 1], normalised per channel.

    Runs on the pixels' device (the evaluation runs it on the GPU, the image processor on the CPU).

    Args:
        pixels (`torch.Tensor` of dtype uint8 and shape `(N, 3, S, S)`): e.g. stacked [`eval_view`]s.
        mean, std (3 floats or tensors of shape `(3,)`): the per-channel statistics.

    Returns:
        `torch.Tensor` of dtype float32 and shape `(N, 3, S, S)`.
    """
    mean = torch.as_tensor(mean, dtype=torch.float32, device=pixels.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=pixels.device).view(1, -1, 1, 1)
    return (pixels.float().mul(1.0 / 255) - mean) / std  # the arithmetic of torchvision's ToDtype + Normalize


def resize_center_crop(image_size: int) -> v2.Compose:
    """Resize the shorter side to `image_size`, then center-crop a square `image_size` side."""
    return v2.Compose([v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)])
