"""The objective a run trains with (`--objective`), built once: its loss ([`ContrastiveObjective`]), what a resume
must share of it, and SogCLR's state per image, its size checked before the work (one float32 per training
image: 5 MB for ImageNet-1k's 1.28 M images, against the device's free memory; fine)."""

from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator

from ..arguments import UsageError
from ..collective import Processes
from ..configuration_simclr import SimCLRConfig
from ..decoded_cache import free_memory
from ..loss import ContrastiveObjective
from ..paths import megabytes
from .arguments import PretrainingArguments


def objective_settings(args: PretrainingArguments, applied: dict[str, Any]) -> dict[str, Any]:
    """What a resume must share of the objective: its name and its parameters as applied, and the online head
    (whose state the checkpoint holds or not)."""
    return {
        "objective": args.objective,
        "dclw_sigma": applied["dclw_sigma_applied"],
        "sogclr_gamma": applied["sogclr_gamma_applied"],
        "online_linear_head": applied["online_linear_head_applied"],
    }


def build_objective(
    args: PretrainingArguments,
    config: SimCLRConfig,
    num_images: int,
    accelerator: Accelerator,
    processes: Processes,
    notes: list[str],
) -> ContrastiveObjective | None:
    """`--objective` with its parameters (and the model's `loss_temperature`) on the device, or None for
    `nt_xent`, which the model computes itself (the pinned losses). SogCLR's u (one float32 per training image: 5 MB for ImageNet-1k's 1.28 M) is checked
    against the device's free memory first ([`check_objective_memory`]), before any image is decoded, and said
    in the run's notes."""
    if args.objective == "nt_xent":
        return None
    check_objective_memory(args, num_images, accelerator.device, processes)
    if args.objective == "sogclr":
        notes.append(
            f"SogCLR keeps u for {num_images} images: {megabytes(objective_bytes(args, num_images))} on "
            f"{accelerator.device} (the same on every process) and in every checkpoint."
        )
    objective = ContrastiveObjective(
        args.objective, config.loss_temperature, args.dclw_sigma, args.sogclr_gamma, num_images=num_images
    )
    return objective.to(accelerator.device)


def objective_bytes(args: PretrainingArguments, num_images: int) -> int:
    """What the objective keeps per training image: SogCLR's u, one float32 each (ImageNet-1k's 1.28 M images:
    5.1 MB); the others keep nothing."""
    return 4 * num_images if args.objective == "sogclr" else 0


def check_objective_memory(
    args: PretrainingArguments, num_images: int, device: torch.device, processes: Processes
) -> None:
    """Refuse SogCLR's u where it would take more than half of the device's free memory (every process keeps
    it whole), before any image is decoded; in practice it never does (5 MB for 1.28 M images).

    Raises:
        UsageError: naming its size and what is free.
    """
    needed = objective_bytes(args, num_images)
    if needed == 0:
        return
    free = free_memory(device, processes)
    if needed > free // 2:
        raise UsageError(
            f"--objective sogclr keeps one float per training image: {megabytes(needed)} for {num_images} images, "
            f"more than half of the {megabytes(free)} free on {device}; use --objective dcl (no state per image), "
            f"or fewer images (--max_train_samples)."
        )
