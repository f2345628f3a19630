"""Everything a run needs before its first step, built once: the folder, the data, the model, the views.

[`start_run`] reads top to bottom: output folder and resume point -> data -> the plan -> model ->
optimizer -> the decoded split -> views -> resumed state -> kNN monitor -> trackers and log. Every check
that can refuse the run happens here, before the first step.
"""

from __future__ import annotations

import datetime
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import InitProcessGroupKwargs, set_seed
from torch import nn

from ..arguments import UsageError, as_usage_error, run_arguments
from ..augmentation import AugmentationConfig
from ..collective import Processes, on_main, start_control_group, together
from ..conditions import Settings, applied_settings
from ..data import decode_labels
from ..devices import resolve_mixed_precision
from ..folder_format import CHECKPOINT_DIR, LOG_HISTORY_FILE, SNAPSHOT_DIR, TRACKER_PROJECT
from ..folder_hold import hold_folder
from ..hub import hub_token
from ..loss import ContrastiveObjective
from ..model_folder import check_loaded_weights, weights_errors
from ..modeling_simclr import SimCLRForPreTraining
from ..paths import WRITE_DIR, WRITE_FILE, check_free_space, check_path, megabytes
from .arguments import PRETRAINING_ARGUMENTS, PretrainingArguments, default_output_dir
from .checkpoints import TrainState, check_resume_settings, find_checkpoint, resume_settings
from .data_arguments import DataArguments
from .log import IntervalLog
from .model_arguments import MODEL_FLAGS, ModelArguments
from .monitor import KNNMonitor, build_knn_monitor
from .objective import build_objective, objective_bytes, objective_settings
from .online_head import OnlineLinearHead, build_online_head
from .optimizer import build_optimizer
from .plan import RunPlan
from .run_folder import prepare_output_dir
from .views import CPUViews, DecodedSplit, GPUViews, StreamedViews, build_views, decoded_split
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
    processes: Processes  # the run's, which agree on every decision that stops or changes it
    objective: ContrastiveObjective | None  # None: the model's own NT-Xent
    online_head: OnlineLinearHead | None


def start_run(model_args: ModelArguments, data_args: DataArguments, args: PretrainingArguments) -> Run:
    """Set up a run (see the module docstring); nothing is trained yet.

    Raises:
        UsageError: for a folder that holds another run or cannot be written, a resume without a checkpoint
            or whose settings differ from its checkpoint's, splits that cannot be loaded, data smaller than
            the global batch, a model that does not take the views, offline mode with `--push_to_hub`.
    """
    check_here(model_args, data_args, args)
    named = args.output_dir is None
    args.output_dir = default_output_dir(model_args, data_args) if named else args.output_dir
    if args.push_to_hub:
        hub_token()  # offline mode or no token: say so now, not after the run
    output_dir = Path(args.output_dir)
    accelerator, processes = build_accelerator(args, output_dir)
    announce(accelerator, output_dir, named)
    checkpoint = open_output_dir(accelerator, processes, output_dir, args)
    set_seed(args.seed)
    augmentation = data_args.augmentation()
    dataset, applied, notes, queries = load_data(accelerator, processes, model_args, data_args, args)
    plan = RunPlan.create(args, len(dataset), accelerator.num_processes)
    model = build_model(model_args, augmentation)
    settings = run_settings(model.config, dataset, args, applied, plan)
    if checkpoint is not None:
        check_resume_settings(checkpoint, settings)  # before decoding the data and loading the state
    model = place_model(model, accelerator, applied["sync_batchnorm_applied"])
    optimizer = build_optimizer(model, args, plan.peak_learning_rate)
    # Before the first image is decoded, on every process: the decoding is collective, a refusal stops them all.
    split = decoded_split(data_args, dataset, augmentation.image_size, accelerator.device)
    check = lambda: check_disk_space(output_dir, model, args, plan, data_args, dataset, split)  # noqa: E731
    together(processes, "checking the disks' free space", check)
    objective = build_objective(args, model.config, len(dataset), accelerator, processes, notes)
    compile = torch_compile(args, accelerator)
    views = build_views(data_args, dataset, augmentation, plan, accelerator, args.seed, compile, split)
    online_head = build_online_head(applied, model.simclr.hidden_size, dataset, accelerator.device)
    model, optimizer = accelerator.prepare(model, optimizer)  # the views follow their own BatchOrder
    model = torch.compile(model) if compile else model
    state = resume_state(accelerator, processes, checkpoint, objective, online_head)
    monitor = build_knn_monitor(
        processes, data_args, dataset, queries, views.memory_images, augmentation, args.knn_k
    )
    config = run_record(
        run_arguments(model_args, data_args, args), applied, plan, views, augmentation, compile, accelerator
    )
    output_dir.mkdir(parents=True, exist_ok=True)  # every check passed: the run's files come from here on
    accelerator.init_trackers(TRACKER_PROJECT, config={k: str(v) for k, v in config.items()})
    describe_run(accelerator, plan, args, views, dataset, monitor, data_args, augmentation.image_size, notes)
    log = IntervalLog(accelerator, output_dir / LOG_HISTORY_FILE, plan)
    return Run(
        accelerator,
        args,
        output_dir,
        plan,
        augmentation,
        model,
        optimizer,
        views,
        state,
        settings,
        config,
        monitor,
        log,
        NonFiniteWatch(accelerator, processes, output_dir),
        processes,
        objective,
        online_head,
    )


def run_settings(
    config: Any, dataset: datasets.Dataset, args: PretrainingArguments, applied: dict[str, Any], plan: RunPlan
) -> dict[str, Any]:
    """What a resume must share with this run's checkpoints ([`resume_settings`]), the objective's included."""
    settings = resume_settings(
        config, dataset, args.optimizer, plan.global_batch, plan.total_steps, plan.warmup_steps
    )
    return {**settings, **objective_settings(args, applied)}


def load_data(
    accelerator: Accelerator,
    processes: Processes,
    model_args: ModelArguments,
    data_args: DataArguments,
    args: PretrainingArguments,
) -> tuple[datasets.Dataset, dict[str, Any], list[str], datasets.Dataset | None]:
    """The training split (every process reads it whole: batches are sharded by rank), what the run applies
    of its settings now that it knows the split and the processes ([`applied_settings`]: `<flag>_applied`,
    the notes), and the kNN monitor's queries, loaded (and so checked) before anything is decoded."""
    dataset = data_args.load_split("train_split", seed=args.seed)
    facts = run_facts(accelerator, dataset)
    applied, notes = applied_settings(PRETRAINING_ARGUMENTS, Settings(model_args, data_args, args), facts)
    every = applied["knn_every_epochs_applied"]
    load = lambda: monitor_queries(data_args, args, dataset, every)  # noqa: E731
    return dataset, applied, notes, together(processes, "loading the kNN monitor's queries", load)


def check_here(model_args: ModelArguments, data_args: DataArguments, args: PretrainingArguments) -> None:
    """What the script's parsing checks (for runs started from Python), and the settings this machine's device
    refuses (`--mixed_precision fp16` without CUDA), before any work."""
    for arguments in (model_args, data_args):
        arguments.check()
    given = Settings(model_args, data_args, args)
    applied_settings(PRETRAINING_ARGUMENTS, given, {"cuda": torch.cuda.is_available()})


def run_record(
    arguments: dict,
    applied: dict,
    plan: RunPlan,
    views: GPUViews | CPUViews,
    augmentation: AugmentationConfig,
    compile: bool,
    accelerator: Accelerator,
) -> dict:
    """The run's arguments with what setting up decided (batch, rate, steps, recipe), and, beside each setting
    that applies only under a condition or that the run resolves (`auto`), `<flag>_applied`: what it did
    (`applied`: [`applied_settings`], then the resolutions)."""
    return {
        **arguments,
        **applied,
        "global_batch_size": plan.global_batch,
        "num_processes": plan.world_size,
        "peak_learning_rate": plan.peak_learning_rate,
        "total_steps": plan.total_steps,
        "augmentation": augmentation.to_dict(),
        "augment_on_applied": views.name,
        "torch_compile_applied": compile,
        "mixed_precision_applied": accelerator.mixed_precision,  # auto: bf16 on a GPU that has it, else no
        "keep_decoded_on_applied": {StreamedViews: "host", GPUViews: "device"}.get(type(views)),  # CPU: None
        "dataloader_num_workers_applied": views.num_workers if isinstance(views, CPUViews) else None,
    }


def run_facts(accelerator: Accelerator, dataset: datasets.Dataset) -> dict[str, bool]:
    """What a run knows once it has its processes and its data: the device, the processes, the labels."""
    return {
        "cuda": accelerator.device.type == "cuda",
        "several_processes": accelerator.num_processes > 1,
        "labels": dataset.features.get("label") is not None and bool((decode_labels(dataset) >= 0).any()),
    }


def resume_state(
    accelerator: Accelerator, processes: Processes, checkpoint: Path | None, *also: nn.Module | None
) -> TrainState:
    """The run's step counter and the states beside the model's (`also`: SogCLR's u, the online head), registered
    for checkpointing, and, resuming, the checkpoint's state loaded (by every process: a failure on one stops
    them all). Every process holds the same u and head; accelerate saves them once, from the main process, and
    every process loads them, so a resume on another number of processes finds the same u."""
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    for part in also:
        if part is not None:
            accelerator.register_for_checkpointing(part)
    if checkpoint is not None:
        together(processes, f"loading {checkpoint}", lambda: load_checkpoint(accelerator, checkpoint))
        accelerator.print(f"Resumed from {checkpoint} at step {state.step}.")
    return state


def announce(accelerator: Accelerator, output_dir: Path, named: bool) -> None:
    """The first line a run prints: how many processes it sees, on what, and where it writes."""
    accelerator.print(
        f"SimCLR pretraining: {accelerator.num_processes} process(es) ({accelerator.distributed_type.value}), "
        f"device {accelerator.device}, writing to {output_dir}{' (--output_dir not given)' if named else ''}."
    )
    asked_for_more = (
        "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ
    )  # `accelerate launch --cpu`
    if accelerator.num_processes == 1 and asked_for_more:
        accelerator.print(
            "Note: one process only: `accelerate launch --cpu --num_processes N` starts one. For N processes on "
            "CPU use `torchrun --nproc_per_node N` or `accelerate launch --multi_gpu --num_processes N`."
        )


def open_output_dir(
    accelerator: Accelerator, processes: Processes, output_dir: Path, args: PretrainingArguments
) -> Path | None:
    """The output folder first: a resume needs a checkpoint, a fresh run a folder free of other runs, and
    every folder the run will write must be writable. Returns the checkpoint to resume from, if any. Every
    process checks and reads; the main process alone holds the folder and sets aside or deletes what a run
    may not mix with, and every process learns of a refusal."""

    def check() -> Path | None:
        for name in (CHECKPOINT_DIR, SNAPSHOT_DIR, TRACKER_PROJECT):
            check_path("output_dir", str(output_dir / name), WRITE_DIR)
        check_path("output_dir", str(output_dir / LOG_HISTORY_FILE), WRITE_FILE)
        resume = args.resume_from_checkpoint
        return find_checkpoint(output_dir, resume, say=accelerator.print) if resume else None

    on_main(
        processes,
        f"holding {output_dir}",
        lambda: hold_folder("output_dir", output_dir, say=accelerator.print),
    )
    checkpoint = together(processes, "checking the output folder", check)
    overwrite = args.overwrite_output_dir
    on_main(
        processes,
        "preparing the output folder",
        lambda: prepare_output_dir(output_dir, checkpoint, overwrite, say=accelerator.print),
    )
    return checkpoint


# Optimizer state per parameter, in parameter-sized tensors: the momentum buffer; AdamW's two moments.
OPTIMIZER_SLOTS = {"lars": 1, "sgd": 1, "adamw": 2}


def check_disk_space(
    output_dir: Path,
    model: nn.Module,
    args: PretrainingArguments,
    plan: RunPlan,
    data_args: DataArguments,
    dataset: datasets.Dataset,
    split: DecodedSplit,
) -> None:
    """Refuse a run whose files will not fit on their disks, before any image is decoded.

    What the run writes is known now: a checkpoint is the weights, the optimizer's state (`OPTIMIZER_SLOTS`
    parameter-sized tensors) and little else; at most `--checkpoints_total_limit` + 1 exist at once (the
    oldest is pruned after a new one is in place); each snapshot and the final model folder hold the weights
    once; the decoded cache (`split`'s file, when it has one not decoded yet) is N x 3 x S x S bytes, S the
    stored size.

    Raises:
        UsageError: naming what needs how much, and what is free ([`check_free_space`]).
    """
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    parameters = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    checkpoint = (
        weights + OPTIMIZER_SLOTS.get(args.optimizer, 2) * parameters + objective_bytes(args, len(dataset))
    )
    finished = range(1, plan.total_steps + 1)
    checkpoints = sum(plan.checkpoints_after(done) for done in finished)
    keep = args.checkpoints_total_limit
    at_once = min(checkpoints, keep + 1) if keep > 0 else checkpoints
    snapshots = sum(plan.snapshots_after(done) for done in finished)
    needed = at_once * checkpoint + (snapshots + 1) * weights
    what = f"{at_once} checkpoint(s) of {megabytes(checkpoint)}, {snapshots} snapshot(s) and the model"
    check_free_space("output_dir", output_dir, needed, what)
    cache = split.cache_file
    if data_args.augment_on != "cpu" and cache is not None and not cache.is_file():
        what = f"the decoded split ({len(dataset)} images at {split.image_size}px)"
        check_free_space("decoded_cache_dir", cache.parent, split.nbytes, what)


def load_checkpoint(accelerator: Accelerator, checkpoint: Path) -> None:
    """`accelerator.load_state`, its errors named with the checkpoint (it was verified before the data work,
    so this is a file changed since, or a state that does not fit this run, e.g. another process count).

    Raises:
        UsageError: naming the checkpoint, what failed and what to do.
    """
    try:
        accelerator.load_state(str(checkpoint))
    except (OSError, RuntimeError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as error:
        raise UsageError(
            f"Cannot resume from {checkpoint}: loading its state failed ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Resume with the number of processes that "
            f"wrote it, pass an older checkpoints/step_N, or start afresh with --overwrite_output_dir."
        ) from error


def torch_compile(args: PretrainingArguments, accelerator: Accelerator) -> bool:
    """`--torch_compile`, by default on where it pays: CUDA (on a CPU the first step would take minutes)."""
    return args.torch_compile if args.torch_compile is not None else accelerator.device.type == "cuda"


def check_tracker(report_to: str) -> None:
    """Refuse `--report_to` a tracker whose package is not installed (accelerate only warns, and logs
    nowhere), before any work; which are installed is accelerate's own list.

    Raises:
        UsageError: naming the package to install, and `--report_to none`.
    """
    from accelerate.tracking import get_available_trackers

    if report_to in ("none", "all") or report_to in {str(tracker) for tracker in get_available_trackers()}:
        return
    raise UsageError(
        f"--report_to {report_to}: {report_to} is not installed, so nothing would be logged there. "
        f"pip install {report_to}, or pass --report_to none (log_history.jsonl is written either way)."
    )


def build_accelerator(args: PretrainingArguments, output_dir: Path) -> tuple[Accelerator, Processes]:
    """The run's `Accelerator` (CPU without CUDA, mixed precision, trackers, seedable data order, the process
    group's timeout) and its processes, with the control group every decision of theirs is made in."""
    check_tracker(args.report_to)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # under torchrun on CPU this gives MULTI_CPU (gloo)
        kwargs_handlers=[InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=args.ddp_timeout))],
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=str(output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    start_control_group(args.ddp_timeout)
    return accelerator, Processes.of_run()


def build_model(model_args: ModelArguments, augmentation: AugmentationConfig) -> SimCLRForPreTraining:
    """A fresh model of `model_args` for views of the augmentation's size, or `--model_name_or_path`'s.

    Raises:
        UsageError: for a model that does not take views of that size (one forward pass of two views tells).
    """
    if model_args.model_name_or_path:
        with weights_errors(model_args.model_name_or_path, "model_name_or_path"):
            model, info = SimCLRForPreTraining.from_pretrained(
                model_args.model_name_or_path, output_loading_info=True
            )
        check_loaded_weights(
            info,
            model_args.model_name_or_path,
            "model_name_or_path",
            "Pass a folder saved from SimCLRForPreTraining, or from SimCLRModel to start a new head.",
            what="tensors of the pretraining model",
            allowed_missing=("projection_head.",),  # an encoder-only folder: the head starts fresh
        )
    else:
        with as_usage_error(MODEL_FLAGS):  # e.g. a backbone the CIFAR stem does not fit
            model = SimCLRForPreTraining(model_args.config(augmentation.image_size))
    size = augmentation.image_size
    model.eval()
    try:
        with torch.no_grad():
            model.simclr(torch.zeros(2, 3, size, size))
    except (AssertionError, RuntimeError, ValueError) as error:
        raise UsageError(
            f"--backbone {model.config.backbone} does not take {size}px views ({type(error).__name__}: {error}): "
            f"pass the --image_size it was built for (e.g. 224 for a ViT), or a CNN such as --backbone resnet18."
        ) from error
    return model.train()


def place_model(model: nn.Module, accelerator: Accelerator, sync_batchnorm: bool) -> nn.Module:
    """On CUDA: the paper's global BatchNorm over processes (SyncBatchNorm, `sync_batchnorm`: as applied, with
    several CUDA processes), and channels-last memory."""
    if accelerator.device.type != "cuda":
        return model
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model.to(memory_format=torch.channels_last)


def monitor_queries(
    data_args: DataArguments, args: PretrainingArguments, dataset: datasets.Dataset, knn_every_epochs: int
) -> datasets.Dataset | None:
    """The labeled rows the kNN monitor queries (every process reads them: they decode them together), or None
    when the monitor is off or does not apply here (`knn_every_epochs`: as applied, 0 without labels in the
    training split or queries).

    Raises:
        UsageError: when `--eval_split` cannot serve as the monitor's queries (missing, unlabeled).
    """
    if knn_every_epochs == 0:
        return None
    max_queries = data_args.max_eval_samples or len(dataset)
    try:
        return data_args.load_split("eval_split", max_queries, seed=args.seed, require_labels=True)
    except UsageError as error:
        raise UsageError(
            f"{error} The kNN monitor queries this split: pass another --eval_split, or --knn_every_epochs 0 "
            f"to pretrain without the monitor."
        ) from error


def describe_run(
    accelerator: Accelerator,
    plan: RunPlan,
    args: PretrainingArguments,
    views: GPUViews | CPUViews,
    dataset: datasets.Dataset,
    monitor: KNNMonitor | None,
    data_args: DataArguments,
    image_size: int,
    notes: list[str],
) -> None:
    """The run's headline (processes, batch, steps, learning rate, device), and what it should know: under it,
    a note for each setting given that does not apply here (`notes`: [`applied_settings`])."""
    chunks = f" in chunks of {args.chunk_size}" if args.chunk_size not in (None, plan.local_batch) else ""
    if isinstance(views, StreamedViews):
        source = f" from the decoded split streamed from {views.cache_file} (--keep_decoded_on host)"
    elif isinstance(views, GPUViews):
        source = " from the decoded split kept on the device (--keep_decoded_on device)"
    else:
        source = ""
    stored = views.images.shape[-1] if isinstance(views, GPUViews) else image_size
    if stored != image_size:
        source += f", stored at {stored}px for {image_size}px views (--stored_image_size)"
    precision = (
        "fp32" if accelerator.mixed_precision == "no" else f"{accelerator.mixed_precision} mixed precision"
    )
    accelerator.print(
        f"SimCLR: {len(dataset)} images, global batch {plan.global_batch} ({plan.local_batch}{chunks} x "
        f"{plan.world_size} processes), {plan.total_steps} steps, peak lr {plan.peak_learning_rate:.4g} "
        f"({args.optimizer}), views made on {accelerator.device.type} (--augment_on {views.name}){source}, "
        f"device {accelerator.device} in {precision} (--mixed_precision {args.mixed_precision}), output "
        f"{args.output_dir}."
    )
    for note in notes:
        accelerator.print(note)
    if accelerator.num_processes > 1:
        accelerator.print(
            f"The {accelerator.num_processes} processes agree on every stop after each step, and wait for each "
            f"other at most {args.ddp_timeout} s (--ddp_timeout) while the main process works alone (the kNN "
            f"monitor's checks, snapshots, checkpoints' last steps, the model's save)."
        )
    # The CPU-sized check below: 12 steps of 64 views of 16 px; a run well beyond it on a CPU is told so.
    beyond_a_check = plan.total_steps * plan.global_batch * image_size**2 > 2 * 12 * 64 * 16**2
    if accelerator.device.type == "cpu" and beyond_a_check:
        accelerator.print(
            f"Note: no GPU here: {plan.total_steps} steps of {plan.global_batch} images at "
            f"{image_size}px run on this CPU; the time per step is estimated after the first steps. A "
            f"CPU-sized run (a check of the setup, not a model): --max_train_samples 1024 --image_size 16 "
            f"--per_device_train_batch_size 64 --max_steps 12 --knn_every_epochs 0."
        )
    if monitor is not None:
        accelerator.print(
            "kNN monitor every {} epochs: {} training images as memory, {} {} images as queries.".format(
                args.knn_every_epochs, *monitor.sizes, data_args.eval_split
            )
        )
    if plan.warmup_steps > plan.total_steps / 2:
        accelerator.print(
            f"Note: --warmup_epochs {args.warmup_epochs:g} makes {plan.warmup_steps} of the {plan.total_steps} "
            f"steps warmup: the learning rate peaks late and the cosine decay is short; lower --warmup_epochs "
            f"for a run this short."
        )
