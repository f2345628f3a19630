"""Peak memory and time of one pretraining step against the batch and the cached-gradient chunk
(`--chunk_size`, [`hf_simclr.cached_gradients`]).

Each setting runs in a fresh subprocess, so that one setting's peak is not another's: the model (a ResNet
with the CIFAR stem), SGD with momentum, random views already in memory, and a few steps of
[`cached_gradient_step`] + the optimizer's step. On a CPU the peak is the process's peak resident memory
(`VmHWM`, reset after setting up through `/proc/self/clear_refs`) above what it held before its first step;
on a GPU, `torch.cuda.max_memory_allocated` above the memory allocated before the first step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..cached_gradients import cached_gradient_step
from ..configuration_simclr import SimCLRConfig
from ..modeling_simclr import SimCLRForPreTraining
from .training import benchmark_device, device_name


def parse_setting(setting: str) -> tuple[int, int]:
    """`"1024:64"`: a batch of 1024 images in chunks of 64 (`"256:256"`, the plain step)."""
    batch, chunk = (int(part) for part in setting.split(":"))
    return batch, chunk


def benchmark_memory(settings: list[str], backbone: str, image_size: int, steps: int) -> dict:
    """One subprocess per `"batch:chunk"` setting; returns the device and a row per setting."""
    rows = []
    for setting in settings:
        batch, chunk = parse_setting(setting)
        arguments = json.dumps(
            {"batch": batch, "chunk": chunk, "backbone": backbone, "image_size": image_size, "steps": steps}
        )
        done = subprocess.run(
            [sys.executable, "-m", __name__, arguments], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"setting {setting} failed:\n{done.stderr[-2000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"batch {batch:5d} chunk {chunk:5d}: peak {row['peak_gb_above_start']:.2f} GB above "
            f"{row['start_gb']:.2f} GB, {row['seconds_per_step']:.2f} s a step"
        )
        rows.append(row)
    return {"device": device_name(benchmark_device()), "results": rows}


def measure(batch: int, chunk: int, backbone: str, image_size: int, steps: int) -> dict:
    """Run in the subprocess: the peak memory and the time per step of one setting (steps after the first
    are timed; the peak covers every step)."""
    device = benchmark_device()
    torch.manual_seed(0)
    config = SimCLRConfig(backbone=backbone, cifar_stem=True, image_size=image_size)
    model = SimCLRForPreTraining(config).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    views = torch.randn(2 * batch, 3, image_size, image_size, device=device)
    start = _memory_now(device)
    _reset_peak(device)
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        cached_gradient_step(model, views, chunk)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    peak = _peak(device)
    timed = seconds[1:] or seconds
    return {
        "batch": batch,
        "chunk": chunk,
        "start_gb": round(start / 1e9, 3),
        "peak_gb_above_start": round((peak - start) / 1e9, 3),
        "seconds_per_step": round(sum(timed) / len(timed), 3),
        "first_step_seconds": round(seconds[0], 3),
    }


def _status_bytes(field: str) -> int:
    """A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} (Linux only)")


def _memory_now(device: torch.device) -> int:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else _status_bytes("VmRSS")


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size


def _peak(device: torch.device) -> int:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _status_bytes("VmHWM")


if __name__ == "__main__":
    print(json.dumps(measure(**json.loads(sys.argv[1]))))
