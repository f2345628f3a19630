"""The CPU data pipeline alone: two-view images per second, per DataLoader worker count.

The pipeline timed is the one pretraining uses on CPU: `ImageViewDataset` (PNG/JPEG decoding and
`TwoViewTransform`) read through a shuffled `torch.utils.data.DataLoader`, with no model behind it.
"""

from __future__ import annotations

import io
import os
import platform
import time
from dataclasses import dataclass

import datasets
import psutil
import torch
import torchvision
from PIL import Image

from ..augmentation import augmentation_preset
from ..data import ImageViewDataset, load_image_dataset
from ..transforms import decode_image, two_view_batch_transform


@dataclass
class DataPipelineResult:
    """Throughput of one (case, num_workers) setting.

    Args:
        case (`str`): what was read, e.g. `"cifar10-32px"`.
        image_size (`int`): side of the views, in pixels.
        num_workers (`int`): DataLoader worker processes (0: the main process does the work).
        batch_size (`int`): images per batch.
        images (`int`): two-view images timed (after the warm-up batches).
        seconds (`float`): wall time over those images.
        first_batch_seconds (`float`): time to the first batch (worker start-up included).
        two_view_images_per_s (`float`): `images / seconds`; each image yields 2 views.
        views_per_s (`float`): `2 * two_view_images_per_s`.
        two_view_images_per_s_per_worker (`float`): per process doing the work (`max(num_workers, 1)`).
        other_processes_cpu_share (`float`): share of the machine's CPU time other processes used during
            the timing; well above 0 means the numbers are low.
    """

    case: str
    image_size: int
    num_workers: int
    batch_size: int
    images: int
    seconds: float
    first_batch_seconds: float
    two_view_images_per_s: float
    views_per_s: float
    two_view_images_per_s_per_worker: float
    other_processes_cpu_share: float


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process and its children).

    Their difference over a time window is what other processes took from the machine meanwhile.
    """
    machine = psutil.cpu_times()
    busy = sum(getattr(machine, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))
    own = 0.0
    this = psutil.Process()
    for process in (this, *this.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        own += times.user + times.system
    return busy, own


def time_loader(
    dataset: torch.utils.data.Dataset,
    num_workers: int,
    batch_size: int,
    num_batches: int,
    warmup_batches: int = 2,
) -> dict[str, float]:
    """Read `warmup_batches + num_batches` shuffled batches; time the last `num_batches`.

    Returns:
        `first_batch_seconds` (worker start-up included), `images` and `seconds` timed, and
        `other_processes_cpu_share`: the share of the machine's CPU time that other processes used
        meanwhile (0: the numbers are this pipeline's alone).
    """
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=True
    )
    if len(loader) < warmup_batches + num_batches:
        raise ValueError(
            f"{len(loader)} batches of {batch_size} in {len(dataset)} rows; "
            f"need {warmup_batches + num_batches}: lower the batch size or the batch count."
        )
    start = time.perf_counter()
    batches = iter(loader)
    images = 0
    for index in range(warmup_batches + num_batches):
        batch = next(batches)
        if index == 0:
            first_batch = time.perf_counter() - start
        if index == warmup_batches - 1:
            timed_from, cpu_from = time.perf_counter(), cpu_seconds()
        if index >= warmup_batches:
            images += batch["pixel_values"].shape[0]
    seconds, (busy, own) = time.perf_counter() - timed_from, cpu_seconds()
    del batches  # shuts the workers down
    others = max(0.0, (busy - cpu_from[0]) - (own - cpu_from[1]))
    return {
        "first_batch_seconds": first_batch,
        "images": images,
        "seconds": seconds,
        "other_processes_cpu_share": others / (seconds * psutil.cpu_count()),
    }


def upsampled_copy(dataset: datasets.Dataset, image_size: int, count: int, seed: int = 0) -> datasets.Dataset:
    """`count` images of `dataset` resized (bicubic) to `image_size` and re-encoded as PNG.

    Stands in for STL-10 (96px) where it is not available: the decode and augmentation cost follow the
    image size. PNG because `datasets` stores images built from arrays, as the Hub's STL-10 copies
    are, as PNG.
    """
    rows = dataset.shuffle(seed=seed).select(range(min(count, len(dataset))))
    encoded = []
    for value in rows.cast_column("image", datasets.Image(decode=False))["image"]:
        image = decode_image(value).resize((image_size, image_size), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image()})
    return datasets.Dataset.from_dict({"image": encoded}, features=features)


def benchmark_data_pipeline(
    dataset_name: str,
    split: str = "train",
    worker_counts: tuple[int, ...] = (0, 1, 2),
    batch_size: int = 256,
    cifar_batches: int = 32,
    stl10_batches: int = 12,
    stl10_samples: int = 4096,
) -> list[DataPipelineResult]:
    """Time the CPU two-view pipeline on CIFAR-10 (32px) and on an STL-10-sized case (96px).

    The 96px case reads `stl10_samples` CIFAR-10 images upsampled to 96px and stored as PNG
    (`upsampled_copy`), augmented with the `stl10` preset (which adds the Gaussian blur).
    The main process runs with one torch thread, as DataLoader workers do, so that
    `num_workers=0` measures one process too.

    Args:
        dataset_name (`str`): CIFAR-10, a Hub name or local directory (see `load_image_dataset`).
        split (`str`, defaults to `"train"`): the split read.
        worker_counts (`tuple[int, ...]`): DataLoader `num_workers` values to time.
        batch_size (`int`, defaults to 256): images per batch.
        cifar_batches (`int`) / `stl10_batches` (`int`): batches timed per setting, after 2 warm-up batches.
        stl10_samples (`int`, defaults to 4096): images in the 96px case.

    Returns:
        One `DataPipelineResult` per (case, num_workers).
    """
    cifar = load_image_dataset(dataset_name, split=split)
    cases = [
        ("cifar10-32px", cifar, "cifar10", cifar_batches),
        (
            "stl10-96px (cifar10 upsampled, PNG)",
            upsampled_copy(cifar, 96, stl10_samples),
            "stl10",
            stl10_batches,
        ),
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    results = []
    try:
        for case, rows, preset, num_batches in cases:
            config = augmentation_preset(preset)
            views = ImageViewDataset(rows, two_view_batch_transform(config))
            for num_workers in worker_counts:
                timing = time_loader(views, num_workers, batch_size, num_batches)
                rate = timing["images"] / timing["seconds"]
                result = DataPipelineResult(
                    case=case,
                    image_size=config.image_size,
                    num_workers=num_workers,
                    batch_size=batch_size,
                    images=timing["images"],
                    seconds=round(timing["seconds"], 3),
                    first_batch_seconds=round(timing["first_batch_seconds"], 3),
                    two_view_images_per_s=round(rate, 1),
                    views_per_s=round(2 * rate, 1),
                    two_view_images_per_s_per_worker=round(rate / max(num_workers, 1), 1),
                    other_processes_cpu_share=round(timing["other_processes_cpu_share"], 3),
                )
                results.append(result)
    finally:
        torch.set_num_threads(threads)
    return results


def machine_description() -> dict:
    """CPU model, core count and library versions, to store beside the numbers."""
    model = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model
            )
    return {
        "cpu": model,
        "cores_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "datasets": datasets.__version__,
    }
