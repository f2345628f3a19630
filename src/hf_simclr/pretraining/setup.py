"""Everything a run needs before its first step, built once: the folder, the data, the model, the views.

[`start_run`] reads top to bottom: output folder and resume point -> data -> the plan -> model ->
optimizer -> views -> resumed state -> kNN monitor -> trackers and log. Every check that can refuse the
run happens here, before the first step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed
from torch import nn

from ..arguments import run_arguments
from ..devices import resolve_mixed_precision
from ..hub import hub_token
from ..model_folder import LOG_HISTORY_FILE, TRACKER_PROJECT
from ..modeling_simclr import SimCLRForPreTraining
from ..transforms import AugmentationConfig
from .arguments import DataArguments, ModelArguments, PretrainingArguments
from .checkpoints import TrainState, check_resume_settings, find_checkpoint, resume_settings
from .log import IntervalLog
from .monitor import KNNMonitor, build_knn_monitor
from .optimizer import build_optimizer
from .plan import RunPlan
from .run_folder import prepare_output_dir
from .views import CPUViews, GPUViews, build_views
from .watch import NonFiniteWatch


@dataclass
class Run:
    """A pretraining run ready for its first (or next) step."""

    accelerator: Accelerator
    args: PretrainingArguments
    output_dir: Path
    plan: RunPlan
    augmentation: AugmentationConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    views: GPUViews | CPUViews
    state: TrainState
    settings: dict[str, Any]  # what a resume must share with this run's checkpoints
    config: dict[str, Any]  # every argument and derived number, saved with the model and snapshots
    monitor: KNNMonitor | None
    log: IntervalLog
    watch: NonFiniteWatch


def start_run(model_args: ModelArguments, data_args: DataArguments, args: PretrainingArguments) -> Run:
    """Set up a run (see the module docstring); nothing is trained yet.

    Raises:
        ValueError: for a folder that holds another run, a resume whose settings differ from its
            checkpoint's, data that cannot be loaded or is smaller than the global batch.
        RuntimeError: with `--push_to_hub`, offline mode or no token.
    """
    if args.push_to_hub:
        hub_token()  # offline mode or no token: say so now, not after the run
    output_dir = Path(args.output_dir)
    accelerator = build_accelerator(args, output_dir)
    # The output folder first: a resume needs a checkpoint, a fresh run a folder free of other runs.
    checkpoint = (
        find_checkpoint(output_dir, args.resume_from_checkpoint) if args.resume_from_checkpoint else None
    )
    prepare_output_dir(accelerator, output_dir, checkpoint, args.overwrite_output_dir)
    set_seed(args.seed)
    augmentation = data_args.augmentation()
    # Data: every process reads the same split; batches are sharded by rank.
    dataset = data_args.load_split(data_args.train_split, data_args.max_train_samples, seed=args.seed)
    plan = RunPlan.create(args, len(dataset), accelerator.num_processes)
    model = build_model(model_args, augmentation)
    settings = resume_settings(
        model.config, dataset, args.optimizer, plan.global_batch, plan.total_steps, plan.warmup_steps
    )
    if checkpoint is not None:
        check_resume_settings(checkpoint, settings)  # before decoding the data and loading the state
    model = place_model(model, accelerator, args.sync_batchnorm)
    optimizer = build_optimizer(model, args, plan.peak_learning_rate)
    views = build_views(data_args, dataset, augmentation, plan, accelerator, args.seed, args.torch_compile)
    model, optimizer = views.prepare(model, optimizer)
    if args.torch_compile:
        model = torch.compile(model)
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        accelerator.print(f"Resumed from {checkpoint} at step {state.step}.")
    monitor = start_monitor(accelerator, data_args, args, dataset, views, augmentation)
    config = run_arguments(model_args, data_args, args)
    config.update(global_batch_size=plan.global_batch, num_processes=plan.world_size,
                  peak_learning_rate=plan.peak_learning_rate, total_steps=plan.total_steps,
                  augment_on=views.name, augmentation=augmentation.to_dict())  # fmt: skip
    accelerator.init_trackers(TRACKER_PROJECT, config={k: str(v) for k, v in config.items()})
    accelerator.print(
        f"SimCLR: {len(dataset)} images, global batch {plan.global_batch} ({plan.local_batch} x "
        f"{plan.world_size} processes), {plan.total_steps} steps, peak lr {plan.peak_learning_rate:.4g} "
        f"({args.optimizer}), views on {views.name}, device {accelerator.device}."
    )
    log = IntervalLog(accelerator, start_log(accelerator, output_dir, resuming=checkpoint is not None), plan)
    return Run(accelerator, args, output_dir, plan, augmentation, model, optimizer, views, state, settings,
               config, monitor, log, NonFiniteWatch(accelerator, output_dir))  # fmt: skip


def build_accelerator(args: PretrainingArguments, output_dir: Path) -> Accelerator:
    """The run's `Accelerator`: CPU without CUDA, mixed precision, trackers, seedable data order."""
    return Accelerator(
        cpu=not torch.cuda.is_available(),  # under torchrun on CPU this gives MULTI_CPU (gloo)
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=str(output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )


def build_model(model_args: ModelArguments, augmentation: AugmentationConfig) -> SimCLRForPreTraining:
    """A fresh model of `model_args` for views of the augmentation's size, or `--model_name_or_path`'s."""
    if model_args.model_name_or_path:
        return SimCLRForPreTraining.from_pretrained(model_args.model_name_or_path)
    return SimCLRForPreTraining(model_args.config(augmentation.image_size))


def place_model(model: nn.Module, accelerator: Accelerator, sync_batchnorm: bool) -> nn.Module:
    """On CUDA: the paper's global BatchNorm over processes (SyncBatchNorm), and channels-last memory."""
    if accelerator.device.type != "cuda":
        return model
    if sync_batchnorm and accelerator.num_processes > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model.to(memory_format=torch.channels_last)


def start_monitor(
    accelerator: Accelerator,
    data_args: DataArguments,
    args: PretrainingArguments,
    dataset: datasets.Dataset,
    views: GPUViews | CPUViews,
    augmentation: AugmentationConfig,
) -> KNNMonitor | None:
    """The kNN monitor on the main process (None when off, or when the data has no labels)."""
    if args.knn_every_epochs == 0 or not data_args.eval_split or not accelerator.is_main_process:
        return None
    monitor = build_knn_monitor(data_args, dataset, views.memory_images, augmentation, args.knn_k, args.seed)
    if monitor is not None:
        accelerator.print(
            "kNN monitor every {} epochs: {} training images as memory, {} {} images as queries.".format(
                args.knn_every_epochs, *monitor.sizes, data_args.eval_split
            )
        )
    return monitor


def start_log(accelerator: Accelerator, output_dir: Path, resuming: bool) -> Path:
    """`log_history.jsonl`: a fresh run starts a fresh log; a resumed one appends."""
    log_file = output_dir / LOG_HISTORY_FILE
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process and not resuming:
        log_file.write_text("")
    return log_file
