"""SimCLR's data augmentation recipe (Chen et al. 2020, Appendix A) as CPU two-view transforms.

`AugmentationConfig` is the one home of the recipe's parameters; the CPU pipeline here and the
batched GPU pipeline in `gpu_transforms.py` both read it, so the two stay the same recipe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# Per-channel statistics used for normalisation (RGB, images scaled to [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentationConfig:
    """Parameters of SimCLR's two-view augmentation.

    Args:
        image_size (`int`): side of the square output views, in pixels.
        crop_scale (`tuple[float, float]`): area range of the random resized crop, as a fraction of the image.
        crop_ratio (`tuple[float, float]`): aspect-ratio range of the random resized crop.
        horizontal_flip_p (`float`): probability of a horizontal flip.
        color_jitter_strength (`float`): the paper's strength `s`; brightness, contrast and saturation
            jitter by `0.8 * s`, hue by `0.2 * s`.
        color_jitter_p (`float`): probability of applying color jitter (paper: 0.8).
        grayscale_p (`float`): probability of converting to grayscale (paper: 0.2).
        blur_p (`float`): probability of a Gaussian blur (paper: 0.5 on ImageNet, off on CIFAR).
        blur_kernel_fraction (`float`): blur kernel side as a fraction of `image_size` (paper: 10%),
            rounded to the nearest odd number of pixels.
        blur_sigma (`tuple[float, float]`): range of the blur's standard deviation, in pixels.
        mean (`tuple[float, float, float]`): per-channel mean for normalisation.
        std (`tuple[float, float, float]`): per-channel standard deviation for normalisation.
    """

    image_size: int = 224
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    horizontal_flip_p: float = 0.5
    color_jitter_strength: float = 1.0
    color_jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_kernel_fraction: float = 0.1
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        self.crop_scale = tuple(self.crop_scale)
        self.crop_ratio = tuple(self.crop_ratio)
        self.blur_sigma = tuple(self.blur_sigma)
        self.mean = tuple(self.mean)
        self.std = tuple(self.std)
        if self.image_size < 8:
            raise ValueError(f"image_size={self.image_size} is too small; use at least 8 pixels.")
        for name in ("horizontal_flip_p", "color_jitter_p", "grayscale_p", "blur_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} is not a probability; use a value in [0, 1].")
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"crop_scale={self.crop_scale} must satisfy 0 < low <= high <= 1.")
        if self.color_jitter_strength < 0:
            raise ValueError(f"color_jitter_strength={self.color_jitter_strength} must be >= 0.")

    @property
    def blur_kernel_size(self) -> int:
        """Odd blur kernel side in pixels, about `blur_kernel_fraction * image_size`."""
        return max(3, int(round(self.blur_kernel_fraction * self.image_size)) // 2 * 2 + 1)

    @property
    def color_jitter(self) -> tuple[float, float, float, float]:
        """(brightness, contrast, saturation, hue) jitter amounts for strength `s`."""
        s = self.color_jitter_strength
        return (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict] = {
    # CIFAR-10 (paper, Appendix B.9): 32px views, strength 0.5, no blur.
    "cifar10": dict(
        image_size=32, color_jitter_strength=0.5, blur_p=0.0, mean=CIFAR10_MEAN, std=CIFAR10_STD
    ),
    # STL-10: 96px views, the ImageNet recipe (strength 1.0, blur with p=0.5).
    "stl10": dict(image_size=96, color_jitter_strength=1.0, blur_p=0.5),
    # ImageNet-sized images: the paper's main recipe.
    "imagenet": dict(image_size=224, color_jitter_strength=1.0, blur_p=0.5),
}


def augmentation_preset(name: str, **overrides) -> AugmentationConfig:
    """Return the `AugmentationConfig` of a named preset, with any field overridden.

    Raises:
        ValueError: if `name` is not a known preset or an override is not a field.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown augmentation preset {name!r}; choose one of {sorted(PRESETS)}.")
    fields = {f.name for f in dataclasses.fields(AugmentationConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"Unknown augmentation parameters {unknown}; valid ones are {sorted(fields)}.")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return AugmentationConfig(**{**PRESETS[name], **overrides})
