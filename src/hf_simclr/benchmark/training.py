"""Training throughput: the model alone (the bound no data pipeline can beat), and real pretraining steps
fed by the GPU views and by the CPU views; peak GPU memory.

Its numbers mean something on a GPU only; on a machine without one the same code runs on the CPU (no autocast,
no fused optimizer, no peak memory), which is how a test keeps it runnable at a tiny size between GPU loans.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import torch

from ..augmentation import augmentation_preset
from ..data import load_image_dataset
from ..folder_format import BENCHMARK_STL10_FOLDER, DECODED_SUBFOLDER, LOG_HISTORY_FILE, benchmark_run_folder
from .arguments import TRAINING_CASES, TrainingCase
from .data_pipeline import upsampled_copy


@dataclass(frozen=True)
class BenchmarkScale:
    """How many steps each measurement times; the first logging interval of a pipeline run is left out."""

    model_steps: int = 30
    model_warmup: int = 10
    gpu_pipeline_steps: int = 120
    gpu_pipeline_log_every: int = 20
    cpu_pipeline_steps: int = 60
    cpu_pipeline_log_every: int = 10
    compile_model: bool = True


FULL_SCALE = BenchmarkScale()


def benchmark_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    """`NVIDIA H200`, or `cpu`: what every number of the report was measured on."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only_views_per_s(
    case: TrainingCase, compile_model: bool, steps: int = 30, warmup: int = 10
) -> float:
    """Views/s of forward + NT-Xent + backward + SGD on random batches already on the device.

    The bound no data pipeline can beat: bf16 autocast, channels_last, fused SGD, as pretraining does on a GPU.
    """
    from ..pretraining.model_arguments import ModelArguments
    from ..pretraining.setup import build_model

    device = benchmark_device()
    on_gpu = device.type == "cuda"
    augmentation = augmentation_preset(case.preset)
    model = build_model(ModelArguments(backbone=case.backbone), augmentation).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=on_gpu)
    step_model = torch.compile(model) if compile_model else model
    size = augmentation.image_size
    pixels = torch.randn(2 * case.batch_size, 3, size, size, device=device).contiguous(
        memory_format=torch.channels_last
    )

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu):
            loss = step_model(pixel_values=pixels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
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
    keep_decoded_on: str = "device",
    decoded_cache_dir: str | None = None,
) -> float:
    """Views/s of real pretraining (`pretrain`) with views made on the GPU or in CPU workers; GPU views from
    the decoded split kept on the device, or (`keep_decoded_on="host"`) streamed from its memory-mapped cache
    in `decoded_cache_dir` (the page cache holds it after the first steps, as on a host with the memory).

    The first logging interval (compilation, worker start-up) is left out; the rest is steady state.
    """
    from ..pretraining.arguments import PretrainingArguments
    from ..pretraining.data_arguments import DataArguments
    from ..pretraining.loop import pretrain
    from ..pretraining.model_arguments import ModelArguments

    pretrain(
        ModelArguments(backbone=case.backbone),
        DataArguments(
            dataset_name=dataset_dir,
            preset=case.preset,
            augment_on=augment_on,
            dataloader_num_workers=num_workers,
            eval_split=None,
            keep_decoded_on=keep_decoded_on if augment_on == "gpu" else "auto",
            decoded_cache_dir=decoded_cache_dir,
        ),
        PretrainingArguments(
            output_dir=output_dir,
            max_steps=steps,
            per_device_train_batch_size=case.batch_size,
            optimizer="sgd",
            logging_steps=log_every,
            report_to="none",
            knn_every_epochs=0,
            checkpointing_steps=str(10**9),
            warmup_epochs=0,
            torch_compile=compile_model,
            online_linear_head=False,  # a benchmark times the step alone
        ),
    )
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
    scale: BenchmarkScale = FULL_SCALE,
) -> list[dict]:
    """Model-only bound (eager and compiled) and the full step with each pipeline, per case.

    The 96px cases read `stl10_samples` CIFAR-10 images upsampled to 96px (`upsampled_copy`). `scale` sets the
    steps timed (a test runs a tiny one on the CPU).

    Returns:
        One dict per case with `model_only_views_per_s` (compiled), `model_only_eager_views_per_s`,
        `cpu_pipeline_views_per_s`, `gpu_pipeline_views_per_s` (the split kept on the device),
        `gpu_streamed_pipeline_views_per_s` (streamed from the host: `--keep_decoded_on host`) and its
        `streamed_fraction_of_in_memory`, and `peak_gpu_memory_gib` (None on the CPU; over the in-memory and
        the streamed runs).
    """
    cifar = load_image_dataset(cifar_dir)
    stl10_dir = os.path.join(work_dir, BENCHMARK_STL10_FOLDER)
    if not os.path.isdir(stl10_dir):
        upsampled_copy(cifar, 96, stl10_samples).save_to_disk(stl10_dir)
    workers = cpu_workers or len(os.sched_getaffinity(0))
    on_gpu = benchmark_device().type == "cuda"
    results = []
    for case in cases:
        data_dir = cifar_dir if case.preset == "cifar10" else stl10_dir
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        row = {
            "case": case.name,
            "backbone": case.backbone,
            "image_size": augmentation_preset(case.preset).image_size,
            "batch_size": case.batch_size,
            "views_per_step": 2 * case.batch_size,
            "cpu_workers": workers,
        }
        model_steps = {"steps": scale.model_steps, "warmup": scale.model_warmup}
        row["model_only_eager_views_per_s"] = round(model_only_views_per_s(case, False, **model_steps))
        print(json.dumps(row), flush=True)
        row["model_only_views_per_s"] = round(
            model_only_views_per_s(case, scale.compile_model, **model_steps)
        )
        row.update(gpu_pipelines(case, data_dir, work_dir, scale, on_gpu))
        gpu_views = row["gpu_pipeline_views_per_s"]
        cpu_views = pipeline_views_per_s(
            case,
            data_dir,
            "cpu",
            os.path.join(work_dir, benchmark_run_folder(case.name, "cpu")),
            steps=scale.cpu_pipeline_steps,
            log_every=scale.cpu_pipeline_log_every,
            num_workers=workers,
            compile_model=scale.compile_model,
        )
        row["cpu_pipeline_views_per_s"] = round(cpu_views)
        row["gpu_pipeline_fraction_of_model_only"] = round(gpu_views / row["model_only_views_per_s"], 3)
        print(json.dumps(row), flush=True)
        results.append(row)
    return results


def gpu_pipelines(
    case: TrainingCase, data_dir: str, work_dir: str, scale: BenchmarkScale, on_gpu: bool
) -> dict[str, float | None]:
    """Views/s of the GPU views from the split kept on the device and streamed from the host
    (`--keep_decoded_on host`, its cache in `work_dir`), and the peak GPU memory over both runs."""
    gpu_views, streamed = (
        pipeline_views_per_s(
            case,
            data_dir,
            "gpu",
            os.path.join(work_dir, benchmark_run_folder(case.name, f"gpu-{place}")),
            steps=scale.gpu_pipeline_steps,
            log_every=scale.gpu_pipeline_log_every,
            compile_model=scale.compile_model,
            keep_decoded_on=place,
            decoded_cache_dir=os.path.join(work_dir, DECODED_SUBFOLDER),
        )
        for place in ("device", "host")
    )
    return {
        "gpu_pipeline_views_per_s": round(gpu_views),
        "gpu_streamed_pipeline_views_per_s": round(streamed),
        "streamed_fraction_of_in_memory": round(streamed / gpu_views, 3),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
    }
