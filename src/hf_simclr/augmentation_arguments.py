"""The recipe's command-line settings, generated from `AugmentationConfig`'s fields ([`augmentation.FLAGS`]).

A job's arguments extend the class [`augmentation_arguments`] makes for the flags it offers: pretraining
all of them (unset: the preset's), fine-tuning the crop and the flip of its training view. Each flag has its
field's help and is checked against its field's range when the arguments are parsed. Imports no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any

from .arguments import UsageError, as_usage_error, check_arguments
from .augmentation import FLAGS, AugmentationConfig


class _AugmentationSettings:
    """What every generated settings class does: check its flags, and build the recipe from a base."""

    def check_augmentation(self) -> None:
        """Each flag set against its field's range (unset, None, passes: the base's value applies)."""
        checks = {}
        for name in self.FLAG_NAMES:
            value, (valid, requirement) = getattr(self, name), FLAGS[name].range
            checks[name] = (value is None or valid(value), requirement)
        check_arguments(self, checks)

    def augmentation_from(self, base: AugmentationConfig) -> AugmentationConfig:
        """`base` with every flag set here.

        Raises:
            UsageError: for values the recipe refuses together (e.g. a minimum crop above the maximum),
                named as the flags.
        """
        overrides: dict[str, Any] = {}
        pairs: dict[str, tuple[str, ...]] = {}  # the pair fields set, with their two flags
        for name in self.FLAG_NAMES:
            flag, value = FLAGS[name], getattr(self, name)
            if value is None:
                continue
            if flag.position is None:
                overrides[flag.field] = value
                continue
            pair = list(overrides.get(flag.field, getattr(base, flag.field)))
            pair[flag.position] = value
            overrides[flag.field], pairs[flag.field] = tuple(pair), flag.pair
        for field_name, (low_flag, high_flag) in pairs.items():  # once both items are set
            low, high = overrides[field_name]
            if low > high:
                raise UsageError(
                    f"--{low_flag} {low} is above --{high_flag} {high}; the smallest value must not exceed "
                    f"the largest."
                )
        with as_usage_error(tuple(FLAGS)):
            return dataclasses.replace(base, **overrides)


def augmentation_arguments(
    class_name: str, flags: tuple[str, ...], defaults: dict[str, Any] | None = None, note: str = ""
) -> type:
    """A dataclass of the recipe's command-line `flags` (names of [`FLAGS`]), to be extended by a job's
    arguments: each field has its config field's help and range, and defaults to `defaults[flag]`, or to
    None (the job's base recipe, e.g. its preset, decides).

    The class has `check_augmentation()` (each set flag in its range; call it in `__post_init__`) and
    `augmentation_from(base)` (the recipe `base` with every set flag).
    """
    defaults = defaults or {}
    specs = []
    for name in flags:
        flag, default = FLAGS[name], defaults.get(name)
        hint = "" if default is not None else f" Unset: {note or 'the base recipe'}'s."
        kind = flag.kind if default is not None else flag.kind | None
        specs.append((name, kind, field(default=default, metadata={"help": flag.help + hint})))
    namespace = {"FLAG_NAMES": flags}
    return dataclasses.make_dataclass(
        class_name, specs, bases=(_AugmentationSettings,), namespace=namespace, kw_only=True
    )
