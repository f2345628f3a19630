"""`--mode gather`: GB/s of gathering a step's rows from the memory-mapped decoded cache, against a plain copy.

What streamed views ([`hf_simclr.pretraining.views.StreamedViews`]) do on the host each step: the step's
rows (a random subset of the split, in the epoch's order) are copied out of the `.npy` memory map into a
buffer. For each view size a cache file of random pixels is written in a temporary folder, and the same
number of bytes is moved several ways:

- `plain_copy`: one contiguous copy of a step's bytes between two tensors in memory (the memory bandwidth
  the gather is held against);
- `contiguous_map`: a contiguous slice of the memory map (the page cache warm), copied;
- `index_select`: `torch.index_select` of the step's random rows into the buffer (what
  [`hf_simclr.pretraining.host_gather.RowGather`] does);
- `sorted_then_reordered`: the rows gathered in file order, then put in the step's order (a second copy);
- `numpy_take`: `numpy.take` of the rows;
- `row_gather_thread`: steps through [`RowGather`] itself (its thread, queues and buffers), the consumer
  doing nothing else;
- `cold_index_select`: `index_select` after the file's pages were dropped from the page cache
  (`posix_fadvise(DONTNEED)`): the rows read from the disk, as in a first epoch over a split larger than
  the page cache;
- `host_to_device` (CUDA only): a step's rows copied from a pinned buffer to the GPU.

Each is the median of several timed repetitions after one warm-up, in GB/s of the step's bytes, on one
core (`torch.set_num_threads(1)`): the gather thread shares the machine with the training loop, and on a
busy 2-core machine torch's parallel copies stalled on each other (medians from 0.1 to 66 GB/s for the same
1.5 MB copy from one run to the next).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..pretraining.host_gather import RowGather
from .training import benchmark_device, device_name

# (view size in px, images per step, images in the cache file): about 300 MB of file each.
GATHER_CASES = ((32, 512, 100_000), (96, 512, 10_000), (224, 256, 2_000))
REPETITIONS = 15  # timed repetitions of each method (after one warm-up)
COLD_STEPS = 5  # steps gathered from the disk after the file's pages are dropped
METHODS = (
    "plain_copy",
    "contiguous_map",
    "index_select",
    "sorted_then_reordered",
    "numpy_take",
    "row_gather_thread",
    "cold_index_select",
    "host_to_device",
)


def benchmark_host_gather(cases: tuple[tuple[int, int, int], ...] = GATHER_CASES) -> dict:
    """Time every method of the module docstring for each `(image_size, batch, images)` case, on one core;
    one row each."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = [time_and_print(*case) for case in cases]
    finally:
        torch.set_num_threads(threads)
    return {"device": device_name(benchmark_device()), "torch_threads": 1, "results": rows}


def time_and_print(image_size: int, batch: int, images: int) -> dict:
    """One case, its file in a temporary folder (removed after); the row printed."""
    with tempfile.TemporaryDirectory(prefix="hf_simclr-gather-") as folder:
        row = time_case(Path(folder) / "decoded-split", image_size, batch, images)
    rates = ", ".join(f"{name} {value:.2f}" for name, value in row["gb_per_s"].items())
    print(f"{image_size:4d} px, batch {batch}: {rates} GB/s")
    return row


def time_case(cache_file: Path, image_size: int, batch: int, images: int) -> dict:
    """Write a cache of `images` random images, then time each method on steps of `batch` rows."""
    shape = (images, 3, image_size, image_size)
    array = np.lib.format.open_memmap(cache_file, mode="w+", dtype=np.uint8, shape=shape)
    rng = np.random.default_rng(0)
    for start in range(0, images, 1000):
        array[start : start + 1000] = rng.integers(0, 256, (min(1000, images - start), *shape[1:]), np.uint8)
    array.flush()
    del array
    cold = cold_gather(
        cache_file, images, batch
    )  # before any page of the file is mapped by the timings below
    mapped = np.load(cache_file, mmap_mode="c")  # as `decode_images` maps it
    table = torch.from_numpy(mapped)
    for start in range(0, images, 1000):  # every page read once: the warm timings find the file cached
        table[start : start + 1000].max()
    generator = torch.Generator().manual_seed(0)
    steps = [torch.randperm(images, generator=generator)[:batch] for _ in range(REPETITIONS + 1)]
    buffer = torch.empty((batch, *shape[1:]), dtype=torch.uint8)
    scratch = torch.empty_like(buffer)
    source = table[:batch].clone()  # anonymous memory
    step_bytes = buffer.numel()

    def sorted_then_reordered(indices: torch.Tensor) -> None:
        ordered, where = indices.sort()
        torch.index_select(table, 0, ordered, out=scratch)
        buffer[where] = scratch

    timed: dict[str, Callable[[torch.Tensor], object]] = {
        "plain_copy": lambda indices: buffer.copy_(source),
        "contiguous_map": lambda indices: buffer.copy_(table[int(indices[0]) % (images - batch) :][:batch]),
        "index_select": lambda indices: torch.index_select(table, 0, indices, out=buffer),
        "sorted_then_reordered": sorted_then_reordered,
        "numpy_take": lambda indices: np.take(mapped, indices.numpy(), axis=0, out=buffer.numpy()),
    }
    rates = {name: step_bytes / median_seconds(run, steps) / 1e9 for name, run in timed.items()}
    rates["row_gather_thread"] = through_row_gather(table, steps, batch) * step_bytes / 1e9
    rates["cold_index_select"] = cold * step_bytes / 1e9
    if torch.cuda.is_available():
        pinned = buffer.pin_memory()
        rates["host_to_device"] = step_bytes / median_seconds(lambda _: host_to_device(pinned), steps) / 1e9
    return {
        "image_size": image_size,
        "batch": batch,
        "images": images,
        "step_mb": step_bytes / 1e6,
        "gb_per_s": rates,
    }


def median_seconds(run: Callable[[torch.Tensor], object], steps: list[torch.Tensor]) -> float:
    """The median time of `run(indices)` over the steps after the first (a warm-up)."""
    run(steps[0])
    times = []
    for indices in steps[1:]:
        started = time.perf_counter()
        run(indices)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def through_row_gather(table: torch.Tensor, steps: list[torch.Tensor], batch: int) -> float:
    """Steps per second through [`RowGather`] (started, drained, closed), the consumer doing nothing."""
    many = [(step, indices) for step, indices in enumerate(steps * 4)]
    started = time.perf_counter()
    for _ in RowGather(table, iter(many), batch, pin_memory=False):
        pass
    return len(many) / (time.perf_counter() - started)


def cold_gather(cache_file: Path, images: int, batch: int) -> float:
    """Steps per second of `index_select` from the disk: the file's pages dropped from the page cache first
    (`posix_fadvise(DONTNEED)` drops the clean pages no process maps, so the file is mapped afresh after it),
    fresh random rows each step."""
    with open(cache_file, "rb") as handle:
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    table = torch.from_numpy(np.load(cache_file, mmap_mode="c"))
    buffer = torch.empty((batch, *table.shape[1:]), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(1)
    steps = [torch.randperm(images, generator=generator)[:batch] for _ in range(COLD_STEPS)]
    started = time.perf_counter()
    for indices in steps:
        torch.index_select(table, 0, indices, out=buffer)
    return COLD_STEPS / (time.perf_counter() - started)


def host_to_device(pinned: torch.Tensor) -> None:
    pinned.to("cuda", non_blocking=True)
    torch.cuda.synchronize()


def format_gather_table(report: dict) -> str:
    """The Markdown table of a `--mode gather` report: GB/s of each method per view size, and the gather
    (`index_select`) against the plain copy (docs/benchmarks.md holds this text)."""
    names = [name for name in METHODS if any(name in row["gb_per_s"] for row in report["results"])]
    lines = [
        "| view | batch | MB a step | "
        + " | ".join(f"`{name}`" for name in names)
        + " | gather / plain copy |",
        "|---:|---:|---:|" + "---:|" * len(names) + "---:|",
    ]
    for row in report["results"]:
        rates = row["gb_per_s"]
        cells = " | ".join(f"{rates[name]:.2f}" if name in rates else "-" for name in names)
        ratio = rates["index_select"] / rates["plain_copy"]
        lines.append(
            f"| {row['image_size']} px | {row['batch']} | {row['step_mb']:.1f} | {cells} | {ratio:.2f} |"
        )
    return "\n".join(lines)
