"""Class-balanced, seeded fractions of the labels: the "1% / 10% of the labels" subsets of the paper."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..arguments import UsageError


def label_fraction_indices(
    labels: torch.Tensor, fraction: float, seed: int = 0, names: Sequence[str] | None = None
) -> torch.Tensor:
    """Indices of a class-balanced, seeded subset holding `fraction` of the labels.

    Every class present keeps round(fraction * its count) examples, drawn at random, so the subset has
    the class proportions of the whole (the "1% / 10% of the labels" subsets of Chen et al. 2020,
    Section 6). With the same seed and labels, the subset of a smaller fraction is contained in that
    of a larger one.

    Args:
        labels (`torch.Tensor` of shape `(N,)`): integer labels.
        fraction (`float`): in (0, 1].
        seed (`int`, defaults to 0): seed of the draw.
        names (`Sequence[str]`, *optional*): class names, for the error message.

    Returns:
        `torch.LongTensor` of sorted indices into `labels`.

    Raises:
        ValueError: if `fraction` is outside (0, 1] or leaves a class without any example.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction {fraction} must lie in (0, 1].")
    labels = labels.cpu()
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in torch.unique(labels).tolist():
        members = (labels == label).nonzero().flatten()
        count = math.floor(fraction * len(members) + 0.5)
        if count == 0:
            name = names[label] if names is not None and 0 <= label < len(names) else str(label)
            raise UsageError(
                f"label fraction {fraction} leaves class {name!r} (label {label}, {len(members)} training "
                f"examples) with no example; use a fraction of at least {0.5 / len(members):.3g} or more "
                f"training samples (--max_train_samples)."
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


def label_fraction_subsets(
    labels: torch.Tensor, fractions: Sequence[float], seed: int = 0, names: Sequence[str] | None = None
) -> tuple[dict[float, torch.Tensor], dict[float, str]]:
    """[`label_fraction_indices`] for several fractions, skipping those that would empty a class.

    Small datasets should still get the rest of their evaluation: a fraction that leaves a class without
    an example is not an error here but a recorded skip.

    Returns:
        `(subsets, skipped)`: indices per usable fraction, and the reason per skipped fraction.
    """
    subsets, skipped = {}, {}
    for fraction in fractions:
        try:
            subsets[fraction] = label_fraction_indices(labels, fraction, seed, names)
        except ValueError as error:
            skipped[fraction] = str(error)
    return subsets, skipped
