"""What each contrastive objective (`--objective`) costs against NT-Xent, and against a whole ResNet-18 step.

The objectives differ only in the loss over z: each is timed alone (forward and backward over random z of the
step's shape, `(B, projection_dim)` per view, median of repeats), and the extra time over NT-Xent's is set against
the time of one ResNet-18 pretraining step with NT-Xent at the same batch ([`measure`] of the memory benchmark:
the model, SGD, cached-gradient chunks of `step_chunk` images). The loss is timed apart because its difference
is a few milliseconds, below the noise of a step of seconds on a shared CPU.
"""

from __future__ import annotations

import statistics
import time

import torch

from ..loss import OBJECTIVES, ContrastiveObjective
from .memory import measure
from .training import benchmark_device, device_name


def benchmark_objectives(
    batches: list[int], step_chunk: int, backbone: str, image_size: int, repeats: int, model_steps: int
) -> dict:
    """A row per batch and objective: the loss's seconds, its extra over NT-Xent's, and that extra as a fraction
    of the NT-Xent ResNet step at the batch."""
    device = benchmark_device()
    rows = []
    for batch in batches:
        step = measure(batch, min(step_chunk, batch), backbone, image_size, model_steps + 1)
        seconds = time_losses(batch, device, repeats)
        for name in OBJECTIVES:
            extra = seconds[name] - seconds["nt_xent"]
            row = {
                "batch": batch,
                "objective": name,
                "loss_seconds": round(seconds[name], 6),
                "extra_seconds_over_nt_xent": round(extra, 6),
                "step_seconds": step["seconds_per_step"],
                "step_chunk": step["chunk"],
                "extra_fraction_of_step": round(extra / step["seconds_per_step"], 5),
            }
            print(
                f"batch {batch:5d} {name:8s}: loss {1000 * row['loss_seconds']:8.2f} ms, "
                f"{1000 * extra:+7.2f} ms over nt_xent, {100 * row['extra_fraction_of_step']:+.3f}% of a "
                f"{row['step_seconds']:.1f} s step"
            )
            rows.append(row)
    return {"device": device_name(device), "backbone": backbone, "image_size": image_size, "results": rows}


def time_losses(batch: int, device: torch.device, repeats: int, dim: int = 128) -> dict[str, float]:
    """Median seconds of each objective's forward and backward over random z `(B, dim)` per view, the objectives
    timed in turn in every round (so that a slower moment of a shared machine falls on all of them), after two
    rounds of warm-up. SogCLR has u of 50,000 images, half of them seen: both of its paths run."""
    generator = torch.Generator().manual_seed(0)
    z_a, z_b = (torch.randn(batch, dim, generator=generator).to(device).requires_grad_() for _ in range(2))
    indices = torch.randperm(50_000, generator=generator)[:batch].to(device)
    objectives = {name: ContrastiveObjective(name, 0.5, num_images=50_000).to(device) for name in OBJECTIVES}
    objectives["sogclr"].state.u[:25_000] = 1.0
    seconds: dict[str, list[float]] = {name: [] for name in OBJECTIVES}
    for round in range(repeats + 2):
        for name, objective in objectives.items():
            _synchronize(device)
            started = time.perf_counter()
            objective(z_a, z_b, indices).loss.backward()
            _synchronize(device)
            if round >= 2:
                seconds[name].append(time.perf_counter() - started)
            z_a.grad = z_b.grad = None
    return {name: statistics.median(times) for name, times in seconds.items()}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
