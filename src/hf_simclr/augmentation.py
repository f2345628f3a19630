"""SimCLR's augmentation recipe (Chen et al. 2020, Appendix A): its parameters, their ranges, the presets, and
the command-line settings generated from them.

[`AugmentationConfig`] is the one home of the recipe: each field carries its help and its range, which the
config checks when it is built, whichever pipeline then reads it (the CPU transforms in `transforms.py`, the
batched GPU ops in `gpu_transforms.py`). The scripts' augmentation flags (`--color_jitter_strength`, ...)
are generated from the same fields ([`FLAGS`], then `augmentation_arguments.py`), so a flag cannot drift
from the recipe. This module imports no torch (the scripts' `--help` reads it) and nothing of the package.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Per-channel statistics (RGB, images scaled to [0, 1]) of the normalisation.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # transformers' IMAGENET_DEFAULT_MEAN (the image processor's default)
IMAGENET_STD = (0.229, 0.224, 0.225)

Range = tuple[Callable[[Any], bool], str]
PROBABILITY: Range = (lambda p: 0 <= p <= 1, "a probability in [0, 1]")
AREA: Range = (lambda a: 0 < a <= 1, "in (0, 1]")
POSITIVE: Range = (lambda x: math.isfinite(x) and x > 0, "> 0")


def setting(default: Any, help: str, valid: Range, flags: tuple[str, ...] = ()) -> Any:
    """A field of the recipe: its default, its help, its range (for a pair: of each item, which must also be
    in order) and the command-line flags it has (a pair: one per item; none: set in Python only)."""
    return field(default=default, metadata={"help": help, "range": valid, "flags": flags})


@dataclass
class AugmentationConfig:
    """Parameters of SimCLR's two-view augmentation; each value is checked against its range when built.

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

    Raises:
        ValueError: `name=value must be ...` for a value out of its range.
    """

    image_size: int = setting(
        224, "Side of the square views, in pixels.", (lambda s: s >= 8, "at least 8 pixels"), ("image_size",)
    )
    crop_scale: tuple[float, float] = setting(
        (0.08, 1.0),
        "Area range of the random resized crop (paper: 0.08 to 1).",
        AREA,
        ("crop_scale_min", "crop_scale_max"),
    )
    crop_ratio: tuple[float, float] = setting((3 / 4, 4 / 3), "Aspect-ratio range of the crop.", POSITIVE)
    horizontal_flip_p: float = setting(
        0.5, "Flip probability (paper: 0.5).", PROBABILITY, ("horizontal_flip_p",)
    )
    color_jitter_strength: float = setting(
        1.0,
        "The paper's s: 0.5 for CIFAR, 1.0 for ImageNet; the strongest single knob.",
        (lambda s: 0 <= s <= 2.5, "in [0, 2.5] (hue jitter 0.2 x s must stay <= 0.5)"),
        ("color_jitter_strength",),
    )
    color_jitter_p: float = setting(0.8, "Jitter probability (paper: 0.8).", PROBABILITY, ("color_jitter_p",))
    grayscale_p: float = setting(0.2, "Grayscale probability (paper: 0.2).", PROBABILITY, ("grayscale_p",))
    blur_p: float = setting(
        0.5, "Blur probability (paper: 0.5 at >= 96 px, 0 on CIFAR).", PROBABILITY, ("blur_p",)
    )
    blur_kernel_fraction: float = setting(
        0.1, "Blur kernel side as a fraction of the view (paper: 0.1).", AREA
    )
    blur_sigma: tuple[float, float] = setting((0.1, 2.0), "Range of the blur's sigma, in pixels.", POSITIVE)
    mean: tuple[float, float, float] = setting(IMAGENET_MEAN, "Per-channel mean.", (math.isfinite, "finite"))
    std: tuple[float, float, float] = setting(IMAGENET_STD, "Per-channel standard deviation.", POSITIVE)

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, list):
                value = tuple(value)
                setattr(self, item.name, value)
            valid, requirement = item.metadata["range"]
            values = value if isinstance(value, tuple) else (value,)
            ordered = len(values) != 2 or values[0] <= values[1]
            if not (all(valid(v) for v in values) and ordered):
                order = (
                    ", an ordered pair (low <= high)" if isinstance(value, tuple) and len(values) == 2 else ""
                )
                raise ValueError(f"{item.name}={value} must be {requirement}{order}.")

    @property
    def blur_kernel_size(self) -> int:
        """Odd blur kernel side in pixels, about `blur_kernel_fraction * image_size` (below `image_size`)."""
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
    "cifar10": dict(image_size=32, color_jitter_strength=0.5, blur_p=0.0, mean=CIFAR10_MEAN, std=CIFAR10_STD),
    # STL-10: 96px views, the ImageNet recipe (strength 1.0, blur with p=0.5).
    "stl10": dict(image_size=96, color_jitter_strength=1.0, blur_p=0.5),
    # ImageNet-sized images: the paper's main recipe.
    "imagenet": dict(image_size=224, color_jitter_strength=1.0, blur_p=0.5),
}


def augmentation_preset(name: str, **overrides) -> AugmentationConfig:
    """Return the `AugmentationConfig` of a named preset, with any field overridden (None: the preset's).

    Raises:
        ValueError: if `name` is not a known preset, an override is not a field, or a value is out of range.
    """
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is not a preset; choose one of {sorted(PRESETS)}.")
    names = {f.name for f in dataclasses.fields(AugmentationConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"Unknown augmentation parameters {unknown}; valid ones are {sorted(names)}.")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return AugmentationConfig(**{**PRESETS[name], **overrides})


# ----------------------------------------------------------------------------------------------
# The command-line settings of the recipe, generated from its fields
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """A command-line flag of the recipe: the config field it sets, and what the flag needs to know of it."""

    field: str
    position: int | None  # the item of a pair field it sets (crop_scale_min: 0), None for a plain field
    range: Range
    help: str
    kind: type  # what a value of the flag is: int or float
    pair: tuple[str, ...]  # for a pair field, its two flags (low, high), to name both in a message


def _flags(item: dataclasses.Field) -> dict[str, Flag]:
    names, help = item.metadata["flags"], item.metadata["help"]
    kind = type(item.default[0] if isinstance(item.default, tuple) else item.default)
    if not names:  # set in Python only
        return {}
    if len(names) == 1:
        return {names[0]: Flag(item.name, None, item.metadata["range"], help, kind, ())}
    return {
        name: Flag(
            item.name,
            position,
            item.metadata["range"],
            f"{end} end of the {help[0].lower()}{help[1:]}",
            kind,
            names,
        )
        for position, (name, end) in enumerate(zip(names, ("Lower", "Upper"), strict=True))
    }


# Every flag of the recipe, by name, in the order of the config's fields.
FLAGS: dict[str, Flag] = {
    name: flag for item in dataclasses.fields(AugmentationConfig) for name, flag in _flags(item).items()
}
