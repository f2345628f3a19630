"""Throughput benchmarks: the CPU data pipeline alone, and training steps (model alone, CPU or GPU views).

The pipeline timed is the one pretraining uses on CPU: `ImageViewDataset` (PNG/JPEG decoding and
`TwoViewTransform`) read through a shuffled `torch.utils.data.DataLoader`, with no model behind it.
Numbers are a benchmark, not a test: run them with `scripts/benchmark.py --mode data`.
"""

from __future__ import annotations

import io
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import datasets
import psutil
import torch
import torchvision
from PIL import Image

from .data import ImageViewDataset, load_image_dataset
from .model_folder import LOG_HISTORY_FILE
from .transforms import augmentation_preset, decode_image, two_view_batch_transform


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


# --- Training throughput: the model alone, and the full step fed by each data pipeline. ---


@dataclass
class TrainingCase:
    """One model/image-size setting of the training benchmark.

    Args:
        name (`str`): e.g. `"cifar10-32px-resnet18"`.
        backbone (`str`): timm backbone.
        preset (`str`): augmentation preset (`cifar10`: 32px with CIFAR stem; `stl10`: 96px).
        batch_size (`int`): images per step (each gives 2 views).
    """

    name: str
    backbone: str
    preset: str
    batch_size: int


TRAINING_CASES = (
    TrainingCase("cifar10-32px-resnet18", "resnet18", "cifar10", 512),
    TrainingCase("stl10-96px-resnet18", "resnet18", "stl10", 512),
    TrainingCase("stl10-96px-resnet50", "resnet50", "stl10", 256),
)


def model_only_views_per_s(
    case: TrainingCase, compile_model: bool, steps: int = 30, warmup: int = 10
) -> float:
    """Views/s of forward + NT-Xent + backward + SGD on random batches already on the GPU.

    The bound no data pipeline can beat: bf16 autocast, channels_last, fused SGD, as pretraining does.
    """
    from .pretraining.arguments import ModelArguments
    from .pretraining.setup import build_model

    device = torch.device("cuda")
    augmentation = augmentation_preset(case.preset)
    model = build_model(ModelArguments(backbone=case.backbone), augmentation).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=True)
    step_model = torch.compile(model) if compile_model else model
    size = augmentation.image_size
    pixels = torch.randn(2 * case.batch_size, 3, size, size, device=device).contiguous(
        memory_format=torch.channels_last
    )

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_model(pixel_values=pixels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * 2 * case.batch_size / (time.perf_counter() - start)


def pipeline_views_per_s(
    case: TrainingCase,
    dataset_dir: str,
    augment_on: str,
    output_dir: str,
    steps: int = 120,
    log_every: int = 20,
    num_workers: int = 16,
    compile_model: bool = True,
) -> float:
    """Views/s of real pretraining (`pretrain`) with views made on the GPU or in CPU workers.

    The first logging interval (compilation, worker start-up) is left out; the rest is steady state.
    """
    from .pretraining.arguments import DataArguments, ModelArguments, PretrainingArguments
    from .pretraining.loop import pretrain

    pretrain(
        ModelArguments(backbone=case.backbone),
        DataArguments(dataset_name=dataset_dir, preset=case.preset, augment_on=augment_on,
                      dataloader_num_workers=num_workers, eval_split=None),
        PretrainingArguments(output_dir=output_dir, max_steps=steps, per_device_train_batch_size=case.batch_size,
                             optimizer="sgd", logging_steps=log_every, report_to="none", knn_every_epochs=0,
                             checkpointing_steps=str(10**9), warmup_epochs=0, torch_compile=compile_model),
    )  # fmt: skip
    with open(os.path.join(output_dir, LOG_HISTORY_FILE)) as handle:
        records = [json.loads(line) for line in handle if '"images_per_second"' in line]
    steady = records[1:]
    seconds = sum(
        (r["step"] - p["step"]) * case.batch_size / r["images_per_second"]
        for p, r in zip(records[:-1], steady, strict=True)
    )
    images = (steady[-1]["step"] - records[0]["step"]) * case.batch_size
    return 2 * images / seconds


def benchmark_training(
    cifar_dir: str,
    work_dir: str,
    cases: tuple[TrainingCase, ...] = TRAINING_CASES,
    stl10_samples: int = 8192,
    cpu_workers: int | None = None,
) -> list[dict]:
    """Model-only bound (eager and compiled) and the full step with each pipeline, per case.

    The 96px cases read `stl10_samples` CIFAR-10 images upsampled to 96px (`upsampled_copy`).

    Returns:
        One dict per case with `model_only_views_per_s` (compiled), `model_only_eager_views_per_s`,
        `cpu_pipeline_views_per_s`, `gpu_pipeline_views_per_s` and `peak_gpu_memory_gib`.
    """
    cifar = load_image_dataset(cifar_dir)
    stl10_dir = os.path.join(work_dir, "stl10-like")
    if not os.path.isdir(stl10_dir):
        upsampled_copy(cifar, 96, stl10_samples).save_to_disk(stl10_dir)
    workers = cpu_workers or len(os.sched_getaffinity(0))
    results = []
    for case in cases:
        data_dir = cifar_dir if case.preset == "cifar10" else stl10_dir
        torch.cuda.reset_peak_memory_stats()
        row = {"case": case.name, "backbone": case.backbone, "image_size": augmentation_preset(case.preset).image_size,
               "batch_size": case.batch_size, "views_per_step": 2 * case.batch_size, "cpu_workers": workers}  # fmt: skip
        row["model_only_eager_views_per_s"] = round(model_only_views_per_s(case, compile_model=False))
        print(json.dumps(row), flush=True)
        row["model_only_views_per_s"] = round(model_only_views_per_s(case, compile_model=True))
        row["gpu_pipeline_views_per_s"] = round(
            pipeline_views_per_s(case, data_dir, "gpu", os.path.join(work_dir, case.name + "-gpu"))
        )
        row["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["cpu_pipeline_views_per_s"] = round(
            pipeline_views_per_s(
                case,
                data_dir,
                "cpu",
                os.path.join(work_dir, case.name + "-cpu"),
                steps=60,
                log_every=10,
                num_workers=workers,
            )  # fmt: skip
        )
        row["gpu_pipeline_fraction_of_model_only"] = round(
            row["gpu_pipeline_views_per_s"] / row["model_only_views_per_s"], 3
        )
        print(json.dumps(row), flush=True)
        results.append(row)
    return results


# --- The benchmark run of `scripts/benchmark.py`: one mode, one JSON report. ---


@dataclass
class BenchmarkArguments:
    """Arguments of `scripts/benchmark.py` (and of [`run_benchmark`])."""

    mode: str = field(metadata={"help": "What to time: data (CPU pipeline) or training (GPU only).",
                                "choices": ["data", "training"]})  # fmt: skip
    output_json: str | None = field(
        default=None, metadata={"help": "Write the report here (printed only when unset)."}
    )
    dataset_name: str = field(
        default="uoft-cs/cifar10",
        metadata={
            "help": "CIFAR-10: a Hub name or a local copy (directory of parquet files, save_to_disk folder)."
        },
    )
    split: str = field(default="train", metadata={"help": "--mode data: the split read."})
    num_workers: list[int] = field(
        default_factory=lambda: [0, 1, 2], metadata={"help": "--mode data: DataLoader worker counts to time."}
    )
    batch_size: int = field(default=256, metadata={"help": "--mode data: images per batch."})
    cifar_batches: int = field(
        default=32, metadata={"help": "--mode data: batches timed per 32px setting (after 2 warm-up)."}
    )
    stl10_batches: int = field(
        default=12, metadata={"help": "--mode data: batches timed per 96px setting (after 2 warm-up)."}
    )
    stl10_samples: int = field(
        default=4096, metadata={"help": "--mode data: CIFAR-10 images upsampled to 96px for that case."}
    )
    work_dir: str = field(
        default="outputs/benchmark-training", metadata={"help": "--mode training: scratch."}
    )
    cases: list[str] | None = field(
        default=None,
        metadata={"help": f"--mode training: a subset of {[case.name for case in TRAINING_CASES]}."},
    )
    cpu_workers: int | None = field(
        default=None, metadata={"help": "--mode training: CPU pipeline workers (default: all cores)."}
    )


def run_benchmark(args: BenchmarkArguments) -> dict:
    """Time what `args.mode` names; print each row; write the report (machine, command, date) as JSON.

    Returns:
        The report.
    """
    report = {
        "mode": args.mode,
        "date": date.today().isoformat(),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "arguments": asdict(args),
        "machine": machine_description(),
        # Other processes slow every number down: a load near 0 before the run means a quiet machine.
        "load_average_1min_before": os.getloadavg()[0],
    }
    report.update(_time_data(args) if args.mode == "data" else _time_training(args))
    report["load_average_1min_after"] = os.getloadavg()[0]
    if args.output_json is not None:
        output = Path(args.output_json)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {output}")
    return report


def _time_data(args: BenchmarkArguments) -> dict:
    results = benchmark_data_pipeline(
        args.dataset_name, split=args.split, worker_counts=tuple(args.num_workers), batch_size=args.batch_size,
        cifar_batches=args.cifar_batches, stl10_batches=args.stl10_batches, stl10_samples=args.stl10_samples,
    )  # fmt: skip
    for result in results:
        print(
            f"{result.case:<38} workers={result.num_workers}  "
            f"{result.two_view_images_per_s:8.1f} two-view images/s  {result.views_per_s:8.1f} views/s  "
            f"{result.two_view_images_per_s_per_worker:7.1f} per worker  "
            f"(other processes: {100 * result.other_processes_cpu_share:.0f}% of the CPU)"
        )
    return {"results": [asdict(result) for result in results]}


def _time_training(args: BenchmarkArguments) -> dict:
    cases = tuple(case for case in TRAINING_CASES if not args.cases or case.name in args.cases)
    results = benchmark_training(args.dataset_name, args.work_dir, cases, cpu_workers=args.cpu_workers)
    return {"gpu": torch.cuda.get_device_name(), "results": results}
