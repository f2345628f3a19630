"""Training throughput: the model alone (the bound no data pipeline can beat), and real pretraining steps
fed by the GPU views and by the CPU views; peak GPU memory. GPU only.
"""

from __future__ import annotations

import json
import os
import time

import torch

from ..data import load_image_dataset
from ..folder_format import LOG_HISTORY_FILE
from ..transforms import augmentation_preset
from .arguments import TRAINING_CASES, TrainingCase
from .data_pipeline import upsampled_copy


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
