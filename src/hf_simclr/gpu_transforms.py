"""SimCLR's two-view augmentation (Chen et al. 2020, Appendix A) as batched tensor ops on the device.

The recipe is the one `augmentation.py` describes with `AugmentationConfig`: random resized crop, horizontal
flip, color jitter (applied with probability `color_jitter_p`, its four ops in a random order), random
grayscale, Gaussian blur and normalisation. Here it runs on a whole batch of uint8 images already on the
GPU (or the CPU, for tests): every op is one batched tensor op with per-view parameter tensors, so there are
no Python loops over samples, no host-device synchronisation and no data-dependent shapes, and the pipeline
can be wrapped in `torch.compile` or a CUDA graph.

Each op is a function of explicit per-view parameters (`resized_crop`, `adjust_brightness`, ...), checked
against its `torchvision.transforms.v2.functional` counterpart in `tests/test_gpu_transforms.py`.
Differences to the CPU torchvision pipeline, all below what a SimCLR run can notice:

* Resizing is torchvision's antialiased bilinear resize, in one of two forms chosen from the images'
  shape, never from the drawn boxes. Images no larger than `image_size` (CIFAR-10 at 32 px, STL-10 at
  96 px) never have a crop larger than the view, where antialiasing changes nothing: one `grid_sample`.
  Images stored larger: per-view filter matrices as two matrix products, which run in TF32 where TF32
  matmuls are enabled (see `gaussian_blur`).
* Images stay float32 in [0, 1] between ops; torchvision on uint8 images or PIL rounds to 8 bits after
  each op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from hf_simclr.augmentation import AugmentationConfig

# Color jitter op ids, in torchvision's ColorJitter numbering.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3
# Attempts at a crop of the asked area and aspect ratio before the central-crop fallback (torchvision's).
CROP_ATTEMPTS = 10
# Luma weights of torchvision's rgb_to_grayscale (ITU-R 601-2, red rounded to 0.2989 as torchvision does).
LUMA_WEIGHTS = (0.2989, 0.587, 0.114)


@dataclass
class AugmentationParams:
    """Random parameters of N views; row n describes view n.

    Args:
        crop_boxes (`Tensor` of shape `(N, 4)`, float): integer-valued (top, left, height, width) of each
            crop, in input pixels.
        flip (`Tensor` of shape `(N,)`, bool): whether the view is flipped horizontally.
        color_jitter (`Tensor` of shape `(N,)`, bool): whether color jitter is applied.
        jitter_factors (`Tensor` of shape `(N, 4)`, float): brightness, contrast and saturation factors
            and the hue shift; used only where `color_jitter` is True.
        jitter_order (`Tensor` of shape `(N, 4)`, long): the order of the four jitter ops, a permutation of
            (BRIGHTNESS, CONTRAST, SATURATION, HUE).
        grayscale (`Tensor` of shape `(N,)`, bool): whether the view is turned to grayscale.
        blur (`Tensor` of shape `(N,)`, bool): whether the view is blurred.
        blur_sigma (`Tensor` of shape `(N,)`, float): standard deviation of the blur, in output pixels;
            used only where `blur` is True.
    """

    crop_boxes: Tensor
    flip: Tensor
    color_jitter: Tensor
    jitter_factors: Tensor
    jitter_order: Tensor
    grayscale: Tensor
    blur: Tensor
    blur_sigma: Tensor

    def to(self, device: torch.device | str) -> AugmentationParams:
        """Return the parameters moved to `device`."""
        return AugmentationParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def _per_view(values: Tensor) -> Tensor:
    """Reshape per-view values `(N,)` to broadcast over images `(N, C, H, W)`."""
    return values.view(-1, 1, 1, 1)


def _uniform(u: Tensor, low: float, high: float) -> Tensor:
    """Map uniform [0, 1) draws to [low, high)."""
    return low + (high - low) * u


def sample_crop_boxes(u: Tensor, height: int, width: int, config: AugmentationConfig) -> Tensor:
    """Draw crop boxes as torchvision's `RandomResizedCrop.get_params`, all attempts at once.

    Each view tries `CROP_ATTEMPTS` (area, aspect ratio) pairs, area uniform in `config.crop_scale` times the
    image area and the log of the aspect ratio uniform in the log of `config.crop_ratio`, and keeps the
    first whose rounded box fits; if none fits it takes torchvision's central-crop fallback.

    Args:
        u (`Tensor` of shape `(N, 2 * CROP_ATTEMPTS + 2)`): uniform [0, 1) draws.
        height (`int`), width (`int`): size of the input images.
        config (`AugmentationConfig`): supplies `crop_scale` and `crop_ratio`.

    Returns:
        `Tensor` of shape `(N, 4)`: integer-valued (top, left, height, width) as float.
    """
    area = _uniform(u[:, :CROP_ATTEMPTS], *config.crop_scale) * (height * width)
    log_ratio = _uniform(u[:, CROP_ATTEMPTS : 2 * CROP_ATTEMPTS], *map(math.log, config.crop_ratio))
    ratio = torch.exp(log_ratio)
    w = torch.round(torch.sqrt(area * ratio))
    h = torch.round(torch.sqrt(area / ratio))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # first fitting attempt (0 if none fits)
    found = fits.any(dim=1)
    fallback_h, fallback_w = _central_crop_size(height, width, config.crop_ratio)
    h = torch.where(found, h.gather(1, first).squeeze(1), fallback_h)
    w = torch.where(found, w.gather(1, first).squeeze(1), fallback_w)
    top = torch.minimum(torch.floor(u[:, -2] * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(u[:, -1] * (width - w + 1)), width - w)
    top = torch.where(found, top, torch.div(height - h, 2, rounding_mode="floor"))
    left = torch.where(found, left, torch.div(width - w, 2, rounding_mode="floor"))
    return torch.stack((top, left, h, w), dim=1)


def _central_crop_size(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """Height and width of torchvision's fallback crop: the whole image, trimmed to the ratio range."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        return int(round(width / min(ratio))), width
    if in_ratio > max(ratio):
        return height, int(round(height * max(ratio)))
    return height, width


def _crop_coordinates(start: Tensor, length: Tensor, size: int, full: int, reverse: Tensor) -> Tensor:
    """Normalised sampling coordinates along one axis for `resized_crop`.

    Output pixel j of a crop [start, start + length) samples input coordinate
    `start + (j + 0.5) * length / size - 0.5` (pixel centres at integers), clamped to the crop as
    `F.interpolate(align_corners=False)` clamps to its input; `reverse` flips the order.

    Args:
        start (`Tensor` of shape `(N,)`), length (`Tensor` of shape `(N,)`): crop extent in input pixels.
        size (`int`): output length. full (`int`): input length.
        reverse (`Tensor` of shape `(N,)`, bool): whether to flip this axis.

    Returns:
        `Tensor` of shape `(N, size)`: coordinates in [-1, 1] for `grid_sample(align_corners=False)`.
    """
    steps = (torch.arange(size, device=start.device, dtype=start.dtype) + 0.5) / size
    steps = torch.where(reverse[:, None], steps.flip(0), steps)
    start, length = start[:, None], length[:, None]
    pixel = torch.clamp(start + steps * length - 0.5, min=start, max=start + length - 1)
    return (2 * pixel + 1) / full - 1


def _resize_weights(start: Tensor, length: Tensor, size: int, full: int, reverse: Tensor) -> Tensor:
    """Per-view matrices of the antialiased bilinear resize along one axis for `resized_crop`.

    Output pixel i of a crop [start, start + length) weights input pixel j by the triangle filter
    `max(0, 1 - |j + 0.5 - start - c| / s)` around `c = (i + 0.5) * length / size`, its support
    `s = max(1, length / size)` widened on a downscale, over the crop's pixels, normalised to sum 1: the
    weights of PyTorch's `_upsample_bilinear2d_aa` and PIL. `reverse` flips the order of the rows.

    Returns:
        `Tensor` of shape `(N, size, full)`.
    """
    scale = (length / size)[:, None, None]
    steps = torch.arange(size, device=start.device, dtype=start.dtype) + 0.5
    center = scale * torch.where(reverse[:, None], steps.flip(0), steps)[:, :, None]  # (N, size, 1)
    pixel = torch.arange(full, device=start.device, dtype=start.dtype) + 0.5 - start[:, None, None]
    weights = torch.clamp(1 - (pixel - center).abs() / scale.clamp(min=1), min=0)  # (N, size, full)
    weights = weights * ((pixel > 0) & (pixel < length[:, None, None]))
    return weights / weights.sum(dim=2, keepdim=True)


def resized_crop(images: Tensor, boxes: Tensor, flip: Tensor, size: int) -> Tensor:
    """Crop each image to its box, resize it bilinearly to `size` x `size`, and flip it if asked.

    Equals `torchvision.transforms.v2.functional.resized_crop(..., antialias=True)` followed by
    `horizontal_flip` where `flip`. Images no larger than `size`: one `grid_sample` call (no crop is
    downscaled, so no antialiasing is needed); larger images: `rows @ image @ cols^T` per view with
    `_resize_weights`, a flip being reversed `cols`. The form follows from the shapes alone.

    Args:
        images (`Tensor` of shape `(N, C, H, W)`, float): input images.
        boxes (`Tensor` of shape `(N, 4)`, float): (top, left, height, width) in input pixels.
        flip (`Tensor` of shape `(N,)`, bool): whether to flip each view horizontally.
        size (`int`): side of the square output.

    Returns:
        `Tensor` of shape `(N, C, size, size)`.
    """
    n, _, height, width = images.shape
    top, left, h, w = boxes.to(images.dtype).unbind(dim=1)
    if height > size or width > size:  # a crop may be downscaled: antialias every view
        rows = _resize_weights(top, h, size, height, torch.zeros_like(flip))[:, None]  # (N, 1, size, H)
        cols = _resize_weights(left, w, size, width, flip)[:, None]  # (N, 1, size, W)
        return rows @ images @ cols.transpose(-1, -2)
    x = _crop_coordinates(left, w, size, width, flip)  # (N, size)
    y = _crop_coordinates(top, h, size, height, torch.zeros_like(flip))  # (N, size)
    grid = torch.stack((x[:, None, :].expand(n, size, size), y[:, :, None].expand(n, size, size)), dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def luma(images: Tensor) -> Tensor:
    """Grayscale of RGB images with torchvision's weights.

    Args:
        images (`Tensor` of shape `(N, 3, H, W)`).

    Returns:
        `Tensor` of shape `(N, 1, H, W)`.
    """
    r, g, b = images.unbind(dim=1)
    return r.mul(LUMA_WEIGHTS[0]).add_(g, alpha=LUMA_WEIGHTS[1]).add_(b, alpha=LUMA_WEIGHTS[2]).unsqueeze(1)


def blend(images: Tensor, reference: Tensor, factor: Tensor) -> Tensor:
    """`factor * images + (1 - factor) * reference`, clamped to [0, 1], as torchvision's `_blend`.

    One `lerp` kernel: exact at factor 1 (gives `images`) and 0 (gives `reference`), within float32
    rounding of torchvision's formula elsewhere.

    Args:
        images (`Tensor` of shape `(N, 3, H, W)`).
        reference (`Tensor` broadcastable to `images`).
        factor (`Tensor` of shape `(N,)`).

    Returns:
        `Tensor` of shape `(N, 3, H, W)`.
    """
    return torch.lerp(reference, images, _per_view(factor).to(images.dtype)).clamp_(0, 1)


def adjust_color(images: Tensor, op: Tensor, factor: Tensor) -> Tensor:
    """Per view, adjust brightness, contrast or saturation by `factor`, as torchvision does.

    All three blend the image with a reference: black (brightness), the mean of the image's grayscale
    (contrast) or its grayscale (saturation); a factor of 1 leaves the view unchanged.

    Args:
        images (`Tensor` of shape `(N, 3, H, W)`): RGB in [0, 1].
        op (`Tensor` of shape `(N,)`, long): BRIGHTNESS, CONTRAST or SATURATION per view.
        factor (`Tensor` of shape `(N,)`): the adjustment factor, >= 0.

    Returns:
        `Tensor` of shape `(N, 3, H, W)`.
    """
    gray = luma(images)
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)
    op = _per_view(op)
    # saturation: gray * 1 + 0; contrast: gray * 0 + mean; brightness: gray * 0 + 0
    reference = torch.addcmul(mean * (op == CONTRAST), gray, (op == SATURATION).to(gray.dtype))
    return blend(images, reference, factor)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """torchvision's `adjust_brightness` with a factor per view `(N,)`; see `adjust_color`."""
    return adjust_color(images, torch.full_like(factor, BRIGHTNESS, dtype=torch.long), factor)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """torchvision's `adjust_contrast` with a factor per view `(N,)`; see `adjust_color`."""
    return adjust_color(images, torch.full_like(factor, CONTRAST, dtype=torch.long), factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """torchvision's `adjust_saturation` with a factor per view `(N,)`; see `adjust_color`."""
    return adjust_color(images, torch.full_like(factor, SATURATION, dtype=torch.long), factor)


def adjust_hue(images: Tensor, hue_shift: Tensor) -> Tensor:
    """Rotate each view's hue by `hue_shift` turns, through HSV as torchvision's `adjust_hue`.

    RGB -> HSV follows torchvision's `_rgb_to_hsv`; HSV -> RGB uses the closed form
    `v - v * s * clamp(min(k, 4 - k), 0, 1)` with `k = (n + 6 * h) mod 6` and n = 5, 3, 1 for R, G, B,
    which equals torchvision's table lookup and needs no gather. `v * s` is the channel range.

    Args:
        images (`Tensor` of shape `(N, 3, H, W)`): RGB in [0, 1].
        hue_shift (`Tensor` of shape `(N,)`): shift in [-0.5, 0.5]; 0 leaves the view unchanged up to
            float rounding.

    Returns:
        `Tensor` of shape `(N, 3, H, W)` in [0, 1].
    """
    r, g, b = images.unbind(dim=1)
    value, minimum = torch.aminmax(images, dim=1)
    chroma = value - minimum
    divisor = torch.where(chroma == 0, 1.0, chroma)  # gray pixels: any finite hue works
    hue6 = torch.where(
        value == r, (g - b) / divisor, torch.where(value == g, 2 + (b - r) / divisor, 4 + (r - g) / divisor)
    )  # hue in sixths of a turn, in [-1, 5]
    hue6 = (hue6 + 6 * hue_shift.view(-1, 1, 1)).unsqueeze(1)  # (N, 1, H, W)
    offsets = torch.arange(5, 0, -2, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    k = torch.remainder(offsets + hue6, 6)
    return value.unsqueeze(1) - chroma.unsqueeze(1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def color_jitter(images: Tensor, factors: Tensor, order: Tensor, apply: Tensor) -> Tensor:
    """torchvision's `ColorJitter` with its own factors and op order per view, where `apply`.

    A view's op order is its hue position plus the order of the other three ops, so the batch runs the
    three blend ops that come before hue (as identities where fewer come before), hue once, then the
    blend ops after it: seven batched stages instead of four stages of every op.

    Args:
        images (`Tensor` of shape `(N, 3, H, W)`): RGB in [0, 1].
        factors (`Tensor` of shape `(N, 4)`): brightness, contrast, saturation factors and hue shift.
        order (`Tensor` of shape `(N, 4)`, long): permutation of (BRIGHTNESS, CONTRAST, SATURATION, HUE).
        apply (`Tensor` of shape `(N,)`, bool): views to jitter; the others come back unchanged.

    Returns:
        `Tensor` of shape `(N, 3, H, W)` in [0, 1].
    """
    is_hue = (order == HUE).to(torch.uint8)
    hue_position = is_hue.argmax(dim=1)  # (N,)
    blend_ops = order.gather(1, torch.argsort(is_hue, dim=1, stable=True)[:, :3])  # (N, 3), order kept
    blend_factors = factors.gather(1, blend_ops)  # (N, 3)
    for before_hue in (True, False):
        if not before_hue:
            images = torch.where(_per_view(apply), adjust_hue(images, factors[:, HUE]), images)
        for i in range(3):
            active = apply & ((i < hue_position) == before_hue)
            images = adjust_color(images, blend_ops[:, i], torch.where(active, blend_factors[:, i], 1.0))
    return images


def random_grayscale(images: Tensor, apply: Tensor) -> Tensor:
    """Replace the views where `apply` by their grayscale on all 3 channels (torchvision's
    `rgb_to_grayscale(num_output_channels=3)`), exactly, as a blend with factor 0 or 1.

    Args:
        images (`Tensor` of shape `(N, 3, H, W)`). apply (`Tensor` of shape `(N,)`, bool).

    Returns:
        `Tensor` of shape `(N, 3, H, W)`.
    """
    return blend(images, luma(images), (~apply).to(images.dtype))


def gaussian_kernel1d(sigma: Tensor, kernel_size: int) -> Tensor:
    """Per-view 1-D Gaussian kernels, with torchvision's `_get_gaussian_kernel1d` formula.

    Args:
        sigma (`Tensor` of shape `(N,)`): standard deviations in pixels, > 0.
        kernel_size (`int`): odd number of taps.

    Returns:
        `Tensor` of shape `(N, kernel_size)`, each row summing to 1.
    """
    limit = (kernel_size - 1) / (2.0 * math.sqrt(2.0))
    x = torch.linspace(-limit, limit, kernel_size, device=sigma.device, dtype=sigma.dtype)
    return torch.softmax(-((x / sigma[:, None]) ** 2), dim=1)


def reflect_convolution_matrices(kernels: Tensor, size: int) -> Tensor:
    """Matrices that convolve a length-`size` signal with each view's kernel under reflect padding.

    Row i of view n's matrix holds the weight of every input sample in output sample i: tap k of the
    kernel reads input `i + k - K // 2`, reflected at the ends without repeating the edge sample (as
    `F.pad(mode="reflect")`). Each entry is a sum of at most two taps, so the matrices are exact.

    Args:
        kernels (`Tensor` of shape `(N, K)`): odd-length kernels, `K // 2 < size`.
        size (`int`): signal length.

    Returns:
        `Tensor` of shape `(N, size, size)`.
    """
    kernel_size = kernels.shape[1]
    positions = torch.arange(size, device=kernels.device)
    taps = (positions[:, None] + torch.arange(kernel_size, device=kernels.device) - kernel_size // 2).abs()
    taps = torch.where(taps > size - 1, 2 * (size - 1) - taps, taps)  # (size, K): input read by tap k of i
    one_hot = (taps[:, :, None] == positions).to(kernels.dtype)  # (size, K, size)
    return torch.einsum("nk,ikj->nij", kernels, one_hot)


def gaussian_blur(images: Tensor, kernels: Tensor) -> Tensor:
    """Blur each view with its own separable kernel, reflect-padded, as torchvision's `gaussian_blur`.

    Two batched matrix products, `rows @ images @ cols^T`, with the padding folded into the matrices: on
    the GPU far faster than a depthwise convolution with one group per view and channel. They run in
    float32 unless TF32 matmuls are enabled (`torch.backends.cuda.matmul.allow_tf32`), which rounds pixels
    to 10 mantissa bits (relative error ~5e-4, below one uint8 level) in every view, blurred or not.

    Args:
        images (`Tensor` of shape `(N, C, H, W)`).
        kernels (`Tensor` of shape `(N, K)`): odd-length 1-D kernel per view, `K // 2 < min(H, W)`; a
            one-hot centre tap leaves the view unchanged.

    Returns:
        `Tensor` of shape `(N, C, H, W)`.
    """
    height, width = images.shape[-2:]
    kernels = kernels.to(images.dtype)
    rows = reflect_convolution_matrices(kernels, height)[:, None]  # (N, 1, H, H)
    cols = rows if width == height else reflect_convolution_matrices(kernels, width)[:, None]
    return rows @ images @ cols.transpose(-1, -2)


def random_gaussian_blur(images: Tensor, sigma: Tensor, apply: Tensor, kernel_size: int) -> Tensor:
    """Blur the views where `apply` with their `sigma` `(N,)`; the others come back unchanged."""
    identity = (torch.arange(kernel_size, device=images.device) == kernel_size // 2).to(sigma.dtype)
    kernels = torch.where(apply[:, None], gaussian_kernel1d(sigma, kernel_size), identity)
    return gaussian_blur(images, kernels)


def normalize(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """`(images - mean) / std` per channel, as torchvision's `normalize`.

    Args:
        images (`Tensor` of shape `(N, C, H, W)`). mean (`Tensor` of shape `(C,)`). std (`Tensor` of
            shape `(C,)`).

    Returns:
        `Tensor` of shape `(N, C, H, W)`.
    """
    return (images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


class GPUTwoViewAugmentation(torch.nn.Module):
    """SimCLR's two-view augmentation of a uint8 batch, batched on the images' device.

    Every view of every image gets its own random parameters (Chen et al. 2020, Sec. 2.1: two views drawn
    independently from the same family of augmentations). `forward` is `sample_params` then `augment`;
    `augment` is deterministic and has fixed shapes, so it is the part to hand to `torch.compile` (a
    `torch.Generator` argument is not traceable).

    Args:
        config (`AugmentationConfig`): the recipe; `config.image_size` is the output side.

    Its values were checked when it was built (`AugmentationConfig`'s ranges hold what these ops follow: a
    hue jitter of at most 0.5 turns, a blur kernel narrower than the view, ordered ranges).
    """

    def __init__(self, config: AugmentationConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.tensor(config.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(config.std, dtype=torch.float32), persistent=False)

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Two augmented, normalised views of each image.

        Args:
            images (`Tensor` of shape `(B, 3, H, W)`, uint8): the batch, on any device.
            generator (`torch.Generator`, *optional*): source of all random draws, on the images' device.

        Returns:
            `Tensor` of shape `(2B, 3, S, S)`, float32, with S = `config.image_size`: rows [0, B) are the
            first view of each image, rows [B, 2B) the second (view 1 of image b is row b, view 2 is row
            B + b), the layout the NT-Xent loss pairs.
        """
        _check_images(images, generator)
        params = self.sample_params(2 * images.shape[0], *images.shape[2:], images.device, generator)
        return self.augment(images, params)

    def sample_params(
        self,
        num_views: int,
        height: int,
        width: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> AugmentationParams:
        """Draw the random parameters of `num_views` views of `height` x `width` images.

        All draws come from one `torch.rand` call on `device`, so a seeded `generator` reproduces them.
        Factors are drawn as torchvision's `ColorJitter` does: brightness, contrast and saturation uniform
        in [max(0, 1 - x), 1 + x] and hue uniform in [-h, h], with (x, x, x, h) = `config.color_jitter`.

        Returns:
            `AugmentationParams` with N = `num_views` rows.
        """
        config = self.config
        widths = [2 * CROP_ATTEMPTS + 2, 1, 1, 4, 4, 1, 1, 1]  # uniform draws per view for each parameter
        u = torch.rand(num_views, sum(widths), device=device, generator=generator).split(widths, dim=1)
        crop_u, flip_u, jitter_u, factor_u, order_u, grayscale_u, blur_u, sigma_u = u
        jitter = config.color_jitter  # (brightness, contrast, saturation, hue) amounts
        ranges = [(max(0.0, 1 - x), 1 + x) for x in jitter[:HUE]] + [(-jitter[HUE], jitter[HUE])]
        return AugmentationParams(
            crop_boxes=sample_crop_boxes(crop_u, height, width, config),
            flip=flip_u.squeeze(1) < config.horizontal_flip_p,
            color_jitter=jitter_u.squeeze(1) < config.color_jitter_p,
            jitter_factors=torch.stack([_uniform(factor_u[:, i], *r) for i, r in enumerate(ranges)], dim=1),
            jitter_order=torch.argsort(order_u, dim=1),  # a uniform random permutation per view
            grayscale=grayscale_u.squeeze(1) < config.grayscale_p,
            blur=blur_u.squeeze(1) < config.blur_p,
            blur_sigma=_uniform(sigma_u.squeeze(1), *config.blur_sigma),
        )

    def augment(self, images: Tensor, params: AugmentationParams) -> Tensor:
        """Augment and normalise views with given parameters; view n is made from image n mod B.

        Ops whose probability is 0 in the config are skipped, at no cost.

        Args:
            images (`Tensor` of shape `(B, 3, H, W)`, uint8).
            params (`AugmentationParams`): N rows, N a multiple of B, on the images' device.

        Returns:
            `Tensor` of shape `(N, 3, S, S)`, float32.
        """
        config = self.config
        repeats = params.flip.shape[0] // images.shape[0]
        x = images.repeat(repeats, 1, 1, 1).to(torch.float32)
        x = resized_crop(x, params.crop_boxes, params.flip, config.image_size) * (1 / 255)
        if config.color_jitter_p > 0:
            x = color_jitter(x, params.jitter_factors, params.jitter_order, params.color_jitter)
        if config.grayscale_p > 0:
            x = random_grayscale(x, params.grayscale)
        if config.blur_p > 0:
            x = random_gaussian_blur(x, params.blur_sigma, params.blur, config.blur_kernel_size)
        return normalize(x, self.mean.to(x.device), self.std.to(x.device))


def _check_images(images: Tensor, generator: torch.Generator | None) -> None:
    """Raise a ValueError unless `images` is a uint8 RGB batch and `generator` is on its device."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"Expected uint8 images of shape (B, 3, H, W), got {images.dtype} {tuple(images.shape)}; "
            "pass the decoded RGB batch before any float conversion."
        )
    if generator is not None and generator.device.type != images.device.type:
        raise ValueError(
            f"generator is on {generator.device} but images are on {images.device}; "
            f"create it with torch.Generator(device={str(images.device)!r})."
        )
