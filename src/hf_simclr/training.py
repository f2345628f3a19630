"""SimCLR pretraining with Accelerate: one CPU, one GPU or many, negatives from every process.

`pretrain` reads top to bottom: data, model, optimizer, then one loop of
augment -> forward -> NT-Xent -> step, with checkpoints, logging and a kNN monitor on the side.

Two ways to make the views (`--augment_on`):
- `gpu`: the training split is decoded once to a uint8 tensor that lives on the training device;
  every step indexes a batch of it and augments it there in one batched pass (`gpu_transforms`).
  Each step's random draws come from a generator seeded by (seed, step, rank), so a resumed run
  sees exactly the views of an uninterrupted one. On a machine without GPU this runs on the CPU.
- `cpu`: the classic torchvision pipeline in DataLoader workers (`transforms.TwoViewTransform`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import re
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
import yaml
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm

from .configuration_simclr import SimCLRConfig
from .data import ImageViewDataset, decode_images, decode_labels, decoded_cache_file, load_image_dataset
from .evaluation import KNNMonitor
from .gpu_transforms import GPUTwoViewAugmentation
from .hub import (
    CODE_FILES,
    CONFIG_FILE,
    IMAGE_PROCESSOR_FILE,
    MODEL_CARD_FILE,
    RESULTS_FILE,
    TRAINING_ARGS_FILE,
    WEIGHTS_FILES,
    check_repo_id,
    device_description,
    hub_token,
    push_model_folder,
    save_model_folder,
)
from .modeling_simclr import SimCLRForPreTraining, split_views
from .plots import CONFUSION_FILE, CURVES_FILE, NEIGHBORS_FILE, TSNE_FILE
from .transforms import AugmentationConfig, augmentation_preset, two_view_batch_transform

CHECKPOINT_DIR = "checkpoints"
SNAPSHOT_DIR = "snapshots"  # encoder-only copies at chosen epochs, never pruned
LOG_FILE = "log_history.jsonl"
TRACKER_PROJECT = "simclr"  # trackers that log to files (tensorboard) write into <output_dir>/simclr/
# What a run leaves in its output folder: checkpoints, logs, the model folder and, once probed, its
# results, card and plots; also weight shards and half-written saves (patterns). A new run into that
# folder is refused, or with --overwrite_output_dir these are deleted first: never two runs in one folder.
RUN_FILES = (CHECKPOINT_DIR, SNAPSHOT_DIR, LOG_FILE, TRACKER_PROJECT, TRAINING_ARGS_FILE, CONFIG_FILE,
             IMAGE_PROCESSOR_FILE, *WEIGHTS_FILES, *CODE_FILES, RESULTS_FILE, MODEL_CARD_FILE, TSNE_FILE, NEIGHBORS_FILE,
             CONFUSION_FILE, CURVES_FILE)  # fmt: skip
RUN_FILE_PATTERNS = (r"model-\d+-of-\d+\.safetensors", r"\.tmp-.*")
# Written into each checkpoint: what a resumed run must share with it (see `resume_settings`).
RESUME_SETTINGS_FILE = "resume_settings.json"

# Base learning rates for a global batch of 256 (scaled linearly, Goyal et al. 2017) and weight decay.
OPTIMIZER_DEFAULTS = {
    "lars": {"learning_rate": 0.3, "weight_decay": 1e-6},  # SimCLR paper, Appendix B.1
    "sgd": {"learning_rate": 0.06, "weight_decay": 5e-4},  # common CIFAR recipe
    "adamw": {"learning_rate": 1e-3, "weight_decay": 1e-4},
}


def check_arguments(arguments: Any, checks: dict[str, tuple[bool, str]]) -> None:
    """Raise `ValueError("--flag value must be requirement.")` for the first failed check.

    The one wording of every argument check; the dataclasses run them when the arguments are parsed,
    before any data is loaded.

    Args:
        arguments (dataclass): the arguments, read for the value shown in the message.
        checks (`dict`): `{flag: (valid, requirement)}`.
    """
    for flag, (valid, requirement) in checks.items():
        if not valid:
            raise ValueError(f"--{flag} {getattr(arguments, flag)} must be {requirement}.")


@dataclass
class ModelArguments:
    """Architecture of the model to pretrain (stored in its `SimCLRConfig`)."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from this SimCLR folder or Hub id instead of a fresh model."}
    )
    backbone: str = field(default="resnet18", metadata={"help": "timm CNN name: resnet18, resnet50, ..."})
    cifar_stem: bool | None = field(
        default=None,
        metadata={"help": "3x3 stride-1 stem without max-pool; default: on for images <= 64px (CIFAR)."},
    )
    backbone_kwargs: str | None = field(
        default=None, metadata={"help": "JSON dict for timm.create_model, e.g. '{\"drop_path_rate\": 0.1}'."}
    )
    projection_layers: int = field(default=2, metadata={"help": "0 none, 1 linear, 2+ MLP (paper: 2)."})
    projection_hidden_dim: int | None = field(default=None, metadata={"help": "Default: backbone width."})
    projection_dim: int = field(default=128, metadata={"help": "Width of z (paper: 128)."})
    projection_batch_norm: bool = field(default=True, metadata={"help": "BatchNorm in the MLP head."})
    loss_temperature: float = field(
        default=0.5,
        metadata={"help": "NT-Xent temperature; 0.5 suits CIFAR, 0.1-0.2 larger batches/ImageNet."},
    )

    def __post_init__(self) -> None:
        if self.model_name_or_path is None:
            self.config(image_size=224)  # SimCLRConfig checks every value; the view size is checked later

    def config(self, image_size: int) -> SimCLRConfig:
        """The `SimCLRConfig` these arguments describe, for views of `image_size` pixels."""
        try:
            backbone_kwargs = json.loads(self.backbone_kwargs) if self.backbone_kwargs else {}
        except json.JSONDecodeError:
            backbone_kwargs = None
        example = """'{"drop_path_rate": 0.1}'"""
        check_arguments(
            self, {"backbone_kwargs": (isinstance(backbone_kwargs, dict), f"a JSON dict, e.g. {example}")}
        )
        return SimCLRConfig(
            backbone=self.backbone,
            cifar_stem=image_size <= 64 if self.cifar_stem is None else self.cifar_stem,
            backbone_kwargs=backbone_kwargs,
            projection_layers=self.projection_layers,
            projection_hidden_dim=self.projection_hidden_dim,
            projection_dim=self.projection_dim,
            projection_batch_norm=self.projection_batch_norm,
            loss_temperature=self.loss_temperature,
            image_size=image_size,
        )


@dataclass
class DataArguments:
    """Where the images come from and how the two views are made."""

    dataset_name: str = field(
        metadata={
            "help": "Hub name (uoft-cs/cifar10, jxie/stl10), local parquet/imagefolder dir or save_to_disk dir."
        }
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Dataset configuration name."})
    dataset_revision: str | None = field(default=None, metadata={"help": "Pin the dataset's Hub revision."})
    train_split: str = field(
        default="train", metadata={"help": "Pretraining split(s), e.g. train+unlabeled."}
    )
    eval_split: str | None = field(
        default="test",
        metadata={
            "help": "Labeled split queried by the kNN monitor (the pretraining images are its memory)."
        },
    )
    image_column: str | None = field(default=None, metadata={"help": "Default: found automatically."})
    label_column: str | None = field(default=None, metadata={"help": "Default: found automatically."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Pretrain on a seeded subset."})
    max_eval_samples: int | None = field(
        default=None,
        metadata={"help": "Queries of the kNN monitor (seeded subset); default: as many as training images."},
    )
    preset: str = field(
        default="cifar10", metadata={"help": "Augmentation preset: cifar10, stl10, imagenet."}
    )
    image_size: int | None = field(default=None, metadata={"help": "Override the preset's view size."})
    crop_scale_min: float | None = field(default=None, metadata={"help": "Smallest crop area (paper 0.08)."})
    crop_scale_max: float | None = field(default=None, metadata={"help": "Largest crop area (1.0)."})
    horizontal_flip_p: float | None = field(default=None, metadata={"help": "Flip probability (0.5)."})
    color_jitter_strength: float | None = field(
        default=None,
        metadata={"help": "Paper's s: 0.5 for CIFAR, 1.0 for ImageNet; the strongest single knob."},
    )
    color_jitter_p: float | None = field(default=None, metadata={"help": "Jitter probability (0.8)."})
    grayscale_p: float | None = field(default=None, metadata={"help": "Grayscale probability (0.2)."})
    blur_p: float | None = field(default=None, metadata={"help": "Blur probability (0.5 >= 96px, 0 CIFAR)."})
    augment_on: str = field(
        default="auto",
        metadata={
            "help": "gpu: batched on the training device (fast); cpu: torchvision in workers; auto: gpu."
        },
    )
    dataloader_num_workers: int = field(default=4, metadata={"help": "CPU pipeline workers per process."})
    decoded_cache_dir: str | None = field(
        default=None, metadata={"help": "Folder for the decoded uint8 training split (.npy, memory-mapped)."}
    )

    def __post_init__(self) -> None:
        subset = "a positive number of images (unset: the whole split)"
        check_arguments(self, {
            "max_train_samples": (self.max_train_samples is None or self.max_train_samples >= 1, subset),
            "max_eval_samples": (self.max_eval_samples is None or self.max_eval_samples >= 1, subset),
            "dataloader_num_workers": (self.dataloader_num_workers >= 0, ">= 0 (0: decode in the main process)"),
            "augment_on": (self.augment_on in ("auto", "gpu", "cpu"), "gpu, cpu or auto"),
        })  # fmt: skip
        self.augmentation()  # AugmentationConfig checks the preset, view size, crop scale and probabilities

    def load_split(
        self, split: str, max_samples: int | None, seed: int = 0, require_labels: bool = False
    ) -> datasets.Dataset:
        """`split` of `--dataset_name` in the package's one layout (`image`, optional `label`)."""
        return load_image_dataset(
            self.dataset_name, self.dataset_config_name, split, self.image_column, self.label_column,
            max_samples, self.dataset_revision, seed=seed, require_labels=require_labels,
        )  # fmt: skip

    def augmentation(self) -> AugmentationConfig:
        overrides = {
            "image_size": self.image_size,
            "horizontal_flip_p": self.horizontal_flip_p,
            "color_jitter_strength": self.color_jitter_strength,
            "color_jitter_p": self.color_jitter_p,
            "grayscale_p": self.grayscale_p,
            "blur_p": self.blur_p,
        }
        if self.crop_scale_min is not None or self.crop_scale_max is not None:
            base = augmentation_preset(self.preset).crop_scale
            overrides["crop_scale"] = (
                base[0] if self.crop_scale_min is None else self.crop_scale_min,
                base[1] if self.crop_scale_max is None else self.crop_scale_max,
            )
        return augmentation_preset(self.preset, **overrides)


@dataclass
class PretrainingArguments:
    """How long and how to optimise; saved with every checkpoint and the final model."""

    output_dir: str = field(metadata={"help": "Model folder, checkpoints/ and logs are written here."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start afresh in an --output_dir that holds another run: its checkpoints, model, "
                  "logs and probe results are deleted first. Without it, such a folder is refused."},
    )  # fmt: skip
    num_train_epochs: float = field(default=100, metadata={"help": "Epochs (paper: 100-1000; longer helps)."})
    max_steps: int = field(default=-1, metadata={"help": "If > 0, train this many steps, ignoring epochs."})
    per_device_train_batch_size: int = field(
        default=256,
        metadata={"help": "Images per process; the global batch (x processes) sets the negatives."},
    )
    optimizer: str = field(default="lars", metadata={"help": "lars (paper), sgd or adamw."})
    learning_rate: float | None = field(
        default=None,
        metadata={"help": "Base LR for a global batch of 256: lr = learning_rate * global_batch / 256. "
                  "Default: 0.3 for LARS (paper), 0.06 for SGD, 1e-3 for AdamW."},
    )  # fmt: skip
    weight_decay: float | None = field(
        default=None,
        metadata={"help": "Default: 1e-6 LARS (paper), 5e-4 SGD, 1e-4 AdamW. Never on biases/norms."},
    )
    momentum: float = field(default=0.9, metadata={"help": "Momentum of LARS and SGD."})
    warmup_epochs: float = field(
        default=10, metadata={"help": "Linear warmup before cosine decay (paper: 10)."}
    )
    seed: int = field(default=42, metadata={"help": "Seeds model init, data order and augmentation."})
    mixed_precision: str = field(default="auto", metadata={"help": "no, bf16, fp16, or auto (bf16 on GPU)."})
    torch_compile: bool = field(
        default=False, metadata={"help": "torch.compile the model (faster on GPU after a ~1 min compile)."}
    )
    sync_batchnorm: bool = field(default=True, metadata={"help": "SyncBatchNorm with >1 GPU process."})
    logging_steps: int = field(default=50, metadata={"help": "Log (and sync with the device) every N steps."})
    checkpointing_steps: str = field(
        default="epoch",
        metadata={
            "help": "Checkpoint every N steps, 'epoch', or 'none' (no resumable checkpoints: short runs)."
        },
    )
    checkpoints_total_limit: int = field(
        default=2, metadata={"help": "Keep the last K checkpoints (0: keep all)."}
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' or a checkpoint path."}
    )
    knn_every_epochs: int = field(default=10, metadata={"help": "kNN monitor every N epochs (0: off)."})
    knn_k: int = field(default=10, metadata={"help": "Neighbours of the kNN monitor."})
    report_to: str = field(
        default="tensorboard", metadata={"help": "Trackers: tensorboard, wandb, all, none."}
    )
    push_to_hub: bool = field(
        default=False,
        metadata={"help": "Upload the final folder to --hub_model_id; run linear_probe.py and push_to_hub.py "
                  "afterwards to add results.json and the model card."},
    )  # fmt: skip
    hub_model_id: str | None = field(
        default=None, metadata={"help": "Hub repo, e.g. org/simclr-resnet18-stl10."}
    )
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})
    snapshot_epochs: str | None = field(
        default=None,
        metadata={"help": "Comma-separated epochs, e.g. 1,25,50,100: keep the encoder (weights + config, an "
                  "AutoModel folder, not a resumable checkpoint) in <output_dir>/snapshots/epoch_N, never "
                  "pruned; for studying how the representation matures."},
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZER_DEFAULTS:
            raise ValueError(
                f"--optimizer {self.optimizer} unknown; choose one of {sorted(OPTIMIZER_DEFAULTS)}."
            )
        defaults = OPTIMIZER_DEFAULTS[self.optimizer]
        if self.learning_rate is None:
            self.learning_rate = defaults["learning_rate"]
        if self.weight_decay is None:
            self.weight_decay = defaults["weight_decay"]
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"--mixed_precision {self.mixed_precision} unknown; use no, bf16, fp16 or auto.")
        finite, every = math.isfinite, self.checkpointing_steps
        check_arguments(self, {
            "num_train_epochs": ((finite(self.num_train_epochs) and self.num_train_epochs > 0) or self.max_steps > 0,
                                 "> 0 (or give --max_steps)"),
            "max_steps": (self.max_steps == -1 or self.max_steps > 0,
                          "a positive number of steps, or -1 to train for --num_train_epochs"),
            "per_device_train_batch_size": (self.per_device_train_batch_size >= 1, "a positive integer"),
            "learning_rate": (finite(self.learning_rate) and self.learning_rate > 0,
                              "> 0 (the base rate for a global batch of 256)"),
            "weight_decay": (finite(self.weight_decay) and self.weight_decay >= 0, ">= 0"),
            "momentum": (0 <= self.momentum < 1, "in [0, 1), e.g. 0.9"),
            "warmup_epochs": (finite(self.warmup_epochs) and self.warmup_epochs >= 0, ">= 0 (0: no warmup)"),
            "seed": (0 <= self.seed < 2**32, "in [0, 2**32)"),
            "logging_steps": (self.logging_steps >= 1, "a positive integer"),
            "checkpointing_steps": (every in ("epoch", "none") or (every.isdigit() and int(every) > 0),
                                    "a positive integer, 'epoch' or 'none'"),
            "checkpoints_total_limit": (self.checkpoints_total_limit >= 0, ">= 0 (0: keep every checkpoint)"),
            "knn_every_epochs": (self.knn_every_epochs >= 0, ">= 0 (0: no kNN monitor)"),
            "knn_k": (self.knn_k >= 1, "a positive integer"),
        })  # fmt: skip
        if self.overwrite_output_dir and self.resume_from_checkpoint:
            raise ValueError(
                "--overwrite_output_dir deletes the run that --resume_from_checkpoint continues: give one of them "
                "(resume an interrupted run, or start afresh)."
            )
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id (e.g. org/simclr-resnet18-stl10).")
        if self.push_to_hub:
            check_repo_id(self.hub_model_id)
        self.snapshot_epochs = parse_snapshot_epochs(self.snapshot_epochs)
        if self.max_steps <= 0:  # with --max_steps the last epoch is known once the data is loaded
            check_snapshot_epochs(self.snapshot_epochs, math.floor(self.num_train_epochs))


def parse_snapshot_epochs(value: str | list[int] | tuple[int, ...] | None) -> list[int]:
    """`--snapshot_epochs` (`"1,25,50"` or a list of ints) as a sorted list of distinct positive epochs.

    Raises:
        ValueError: for anything that is not a positive integer.
    """
    if value is None or value == "":
        return []
    items = [item.strip() for item in value.split(",")] if isinstance(value, str) else list(value)
    epochs = []
    for item in items:
        if isinstance(item, bool) or not str(item).isdigit() or int(item) < 1:
            raise ValueError(
                f"--snapshot_epochs {value}: {item!r} is not a positive whole epoch; give epochs such as 1,25,50,100."
            )
        epochs.append(int(item))
    return sorted(set(epochs))


def check_snapshot_epochs(epochs: list[int], last_epoch: int) -> None:
    """Refuse snapshot epochs the run never finishes (`last_epoch`: its last complete epoch)."""
    beyond = [epoch for epoch in epochs if epoch > last_epoch]
    if beyond:
        raise ValueError(
            f"--snapshot_epochs: epoch {beyond[0]} is beyond the end of the run, whose last complete epoch is "
            f"{last_epoch}; drop it or train longer (--num_train_epochs / --max_steps)."
        )


class TrainState:
    """Optimizer steps taken so far; checkpointed with the model through `register_for_checkpointing`."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


def build_model(model_args: ModelArguments, augmentation: AugmentationConfig) -> SimCLRForPreTraining:
    if model_args.model_name_or_path:
        return SimCLRForPreTraining.from_pretrained(model_args.model_name_or_path)
    return SimCLRForPreTraining(model_args.config(augmentation.image_size))


def build_optimizer(model: nn.Module, args: PretrainingArguments, lr: float) -> torch.optim.Optimizer:
    """LARS, SGD or AdamW; biases and norm parameters (1-d) get no weight decay and, for LARS, no
    trust-ratio adaptation (timm's Lars adapts only groups with weight decay), as in the paper."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = {"fused": True} if torch.cuda.is_available() else {}
    if args.optimizer == "lars":
        from timm.optim import Lars

        return Lars(groups, lr=lr, momentum=args.momentum)
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=args.momentum, **fused)
    return torch.optim.AdamW(groups, lr=lr, **fused)


def learning_rate_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warmup to `peak`, then cosine decay to 0 (paper, Appendix B.1)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class DeviceBatches:
    """Batches of a decoded uint8 split that lives on the training device: no per-image Python work.

    Each epoch is a permutation drawn from `seed + epoch`; process `rank` takes its slice of every
    global batch, as Accelerate's sharded loaders do; the last incomplete batch is dropped.

    Args:
        images (`torch.Tensor` of shape `(N, 3, S, S)`, uint8): the decoded split, on the device.
        local_batch (`int`): images per process and step.
        rank (`int`), world_size (`int`): this process and the number of processes.
        seed (`int`): base seed of the epoch permutations.
    """

    def __init__(self, images: torch.Tensor, local_batch: int, rank: int, world_size: int, seed: int) -> None:
        self.images, self.local_batch, self.rank, self.seed = images, local_batch, rank, seed
        self.global_batch = local_batch * world_size
        self.steps_per_epoch = images.shape[0] // self.global_batch

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[torch.Tensor]:
        """Yield this process's uint8 batches `(local_batch, 3, S, S)` of `epoch`, from `start_batch` on."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.images.shape[0], generator=generator).to(self.images.device)
        for batch in range(start_batch, self.steps_per_epoch):
            first = batch * self.global_batch + self.rank * self.local_batch
            yield self.images[order[first : first + self.local_batch]]


def checkpoint_step(path: Path) -> int:
    """N of a checkpoint folder `step_N`."""
    return int(path.name.split("_")[1])


def list_checkpoints(output_dir: Path) -> list[Path]:
    """The finished checkpoints `checkpoints/step_N` of a run, oldest first."""
    root = output_dir / CHECKPOINT_DIR
    finished = [p for p in root.glob("step_*") if re.fullmatch(r"step_\d+", p.name)] if root.is_dir() else []
    return sorted(finished, key=checkpoint_step)


def find_checkpoint(output_dir: Path, resume_from_checkpoint: str) -> Path:
    """Resolve `latest` (the highest `checkpoints/step_N`) or a path; clear error if there is none."""
    if resume_from_checkpoint != "latest":
        path = Path(resume_from_checkpoint)
        if not path.is_dir():
            raise ValueError(f"--resume_from_checkpoint {path} is not a checkpoint folder.")
        return path
    candidates = list_checkpoints(output_dir)
    if not candidates:
        raise ValueError(f"--resume_from_checkpoint latest: no checkpoint in {output_dir / CHECKPOINT_DIR}.")
    return candidates[-1]


def earlier_run_files(output_dir: Path) -> list[Path]:
    """The files and folders of a run (`RUN_FILES`, `RUN_FILE_PATTERNS`) found in `output_dir`."""
    if not output_dir.is_dir():
        return []
    pattern = re.compile("|".join(RUN_FILE_PATTERNS))
    return sorted(
        path for path in output_dir.iterdir() if path.name in RUN_FILES or pattern.fullmatch(path.name)
    )


def prepare_output_dir(
    accelerator: Accelerator, output_dir: Path, checkpoint: Path | None, overwrite: bool
) -> None:
    """Make sure that this run's files never mix with another run's, before any work starts.

    A run that resumes from one of the folder's own checkpoints continues the run there. Any other run
    (a fresh one, or one resuming from a checkpoint elsewhere) needs a folder free of another run's
    files (`earlier_run_files`): it is refused, or with `overwrite` those files are deleted first.

    Raises:
        ValueError: if the folder holds another run and `overwrite` is False; the message names the files
            and the ways out (--resume_from_checkpoint, --overwrite_output_dir, another --output_dir).
    """
    if checkpoint is not None and checkpoint.resolve().parent == (output_dir / CHECKPOINT_DIR).resolve():
        return
    found = earlier_run_files(output_dir)
    names = ", ".join(path.name for path in found)
    if found and not overwrite:
        raise ValueError(
            f"--output_dir {output_dir} holds another run ({names}). Continue it with --resume_from_checkpoint "
            f"latest, delete it and start afresh with --overwrite_output_dir, or pick another --output_dir; "
            f"two runs in one folder would prune each other's checkpoints and resume the wrong one."
        )
    accelerator.wait_for_everyone()  # every process has looked before the main one deletes
    if found and accelerator.is_main_process:
        for path in found:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        accelerator.print(f"--overwrite_output_dir: deleted the earlier run's {names} in {output_dir}.")
    accelerator.wait_for_everyone()


# The architecture a resume must keep: every argument of SimCLRConfig (backbone, head, image size, ...).
ARCHITECTURE_SETTINGS = tuple(
    name for name in inspect.signature(SimCLRConfig.__init__).parameters if name not in ("self", "kwargs")
)
# Where each resume setting comes from, for the message that refuses a mismatch (default: --<name>).
RESUME_SETTING_SOURCES = {
    "global_batch_size": "--per_device_train_batch_size x processes",
    "num_train_samples": "--dataset_name, --train_split, --max_train_samples",
    "dataset_fingerprint": "--dataset_name, --train_split, --max_train_samples, --seed",
    "total_steps": "--num_train_epochs or --max_steps, with the global batch",
    "warmup_steps": "--warmup_epochs, with the global batch",
    "image_size": "--image_size or --preset",
}


def resume_settings(
    config: SimCLRConfig,
    dataset: datasets.Dataset,
    optimizer: str,
    global_batch: int,
    total_steps: int,
    warmup_steps: int,
) -> dict[str, Any]:
    """What a resumed run must share with its checkpoint, saved in each one as `resume_settings.json`.

    The step counter only means the same thing with the same data (length and `datasets` fingerprint)
    and global batch; the optimizer's state only loads into the same optimizer and architecture
    (`SimCLRConfig`); the learning-rate schedule is set by the total and warmup steps. The learning rate
    itself may change (e.g. lowered after a non-finite loss).

    Returns:
        `dict` of JSON values, as read back from a checkpoint.
    """
    settings = {
        "global_batch_size": global_batch,
        "num_train_samples": len(dataset),
        "dataset_fingerprint": dataset._fingerprint,
        "optimizer": optimizer,
        "total_steps": total_steps,
        "warmup_steps": warmup_steps,
        **{name: getattr(config, name) for name in ARCHITECTURE_SETTINGS},
    }
    return json.loads(json.dumps(settings))


def check_resume_settings(checkpoint: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume from `checkpoint` unless this run's `settings` ([`resume_settings`]) are its own.

    A checkpoint written before checkpoints held their settings resumes with a warning: it comes from
    this package's earlier version, whose runs should stay resumable.

    Raises:
        ValueError: naming every setting that differs, with the checkpoint's value and this run's.
    """
    path = checkpoint / RESUME_SETTINGS_FILE
    if not path.is_file():
        warnings.warn(
            f"{checkpoint} has no {RESUME_SETTINGS_FILE} (it predates them), so this resume is unchecked: it "
            f"must use the batch size, data, optimizer, epochs and architecture of the run that wrote it.",
            stacklevel=2,
        )
        return
    saved = json.loads(path.read_text())
    differences = [
        f"{name}: {saved.get(name)!r} in the checkpoint, {value!r} now ({RESUME_SETTING_SOURCES.get(name, '--' + name)})"
        for name, value in settings.items()
        if saved.get(name) != value
    ]
    if differences:
        raise ValueError(
            f"Cannot resume from {checkpoint}: this run's settings differ from those of the run that wrote it.\n  "
            + "\n  ".join(differences)
            + "\nResume with the checkpoint's settings, or start a new run (another --output_dir, or "
            "--overwrite_output_dir)."
        )


def save_checkpoint(
    accelerator: Accelerator, output_dir: Path, step: int, keep: int, settings: dict[str, Any]
) -> None:
    """`save_state` and the run's `settings` into a temporary folder renamed into place, then drop all
    but the last `keep` (0: keep all)."""
    root = output_dir / CHECKPOINT_DIR
    final = root / f"step_{step}"
    staging = root / f".tmp-step_{step}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (staging / RESUME_SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        finished = list_checkpoints(output_dir)
        for old in finished[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def weights_are_finite(model: nn.Module) -> bool:
    """Whether every floating-point parameter and buffer is finite (one device sync)."""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def drop_checkpoints_from(accelerator: Accelerator, output_dir: Path, step: int) -> Path | None:
    """Remove checkpoints taken after `step` or more updates; return the last one left, if any."""
    finished = list_checkpoints(output_dir)
    if accelerator.is_main_process:
        for path in finished:
            if checkpoint_step(path) >= step:
                shutil.rmtree(path, ignore_errors=True)
    accelerator.wait_for_everyone()
    kept = [path for path in finished if checkpoint_step(path) < step]
    return kept[-1] if kept else None


def build_knn_monitor(
    data_args: DataArguments,
    train_set: datasets.Dataset,
    train_images: torch.Tensor | None,
    augmentation: AugmentationConfig,
    k: int,
    seed: int,
) -> KNNMonitor | None:
    """The kNN monitor of a run: the pretraining rows as memory, a labeled eval split as queries.

    The memory follows the training subset (`--max_train_samples`), reusing its decoded images
    (`train_images`, already on the device with GPU views). The queries are `--max_eval_samples` rows
    of `--eval_split`, by default at most as many as the memory has, so that a tiny run's monitor costs
    a fraction of an epoch instead of encoding a whole test split. None when there are no labels.
    """
    labels = decode_labels(train_set)
    if labels is None or not (labels >= 0).any():
        return None
    if train_images is None:
        cache = decoded_cache_file(data_args.decoded_cache_dir, train_set, augmentation.image_size)
        train_images = decode_images(train_set, augmentation.image_size, cache)
    max_queries = data_args.max_eval_samples or len(train_set)
    queries = data_args.load_split(data_args.eval_split, max_queries, seed=seed, require_labels=True)
    cache = decoded_cache_file(data_args.decoded_cache_dir, queries, augmentation.image_size)
    query_images = decode_images(queries, augmentation.image_size, cache)
    return KNNMonitor(train_images, labels, query_images, decode_labels(queries), augmentation, k)


def recipe_arguments(path: str | Path) -> list[str]:
    """A JSON/YAML recipe (`configs/*.yaml`) as command-line arguments, so that later arguments override it."""
    with open(path) as handle:
        recipe = json.load(handle) if str(path).endswith(".json") else yaml.safe_load(handle)
    return [item for key, value in (recipe or {}).items() for item in (f"--{key}", str(value))]


def resolve_mixed_precision(value: str) -> str:
    if value != "auto":
        return value
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def run_arguments(*argument_sets: Any) -> dict[str, Any]:
    """All arguments of a run as one flat dict (saved with checkpoints, the model and the trackers)."""
    merged: dict[str, Any] = {}
    for arguments in argument_sets:
        merged.update(dataclasses.asdict(arguments))
    return merged


def check_batch_fits(num_images: int, local_batch: int, world_size: int) -> None:
    global_batch = local_batch * world_size
    if global_batch > num_images:
        raise ValueError(
            f"The global batch ({local_batch} per device x {world_size} processes = {global_batch}) is larger "
            f"than the {num_images} training images; lower --per_device_train_batch_size or use more data."
        )
    if global_batch < 2:
        raise ValueError(
            "NT-Xent needs at least 2 images per global batch; raise --per_device_train_batch_size."
        )


def pretrain(
    model_args: ModelArguments, data_args: DataArguments, args: PretrainingArguments
) -> dict[str, Any]:
    """Pretrain a SimCLR model and write it to `args.output_dir`; returns a summary of the run."""
    started = time.time()
    if args.push_to_hub:
        hub_token()  # offline mode or no token: say so now, not after the run
    output_dir = Path(args.output_dir)
    trackers = None if args.report_to == "none" else args.report_to
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # under torchrun on CPU this gives MULTI_CPU (gloo)
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=trackers,
        project_dir=str(output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    # The output folder first: a resume needs a checkpoint, a fresh run a folder free of other runs.
    checkpoint = (
        find_checkpoint(output_dir, args.resume_from_checkpoint) if args.resume_from_checkpoint else None
    )
    prepare_output_dir(accelerator, output_dir, checkpoint, args.overwrite_output_dir)
    set_seed(args.seed)
    device, rank, world_size = accelerator.device, accelerator.process_index, accelerator.num_processes
    augmentation = data_args.augmentation()
    augment_on = data_args.augment_on if data_args.augment_on != "auto" else "gpu"

    # Data: every process reads the same split; batches are sharded by rank.
    dataset = data_args.load_split(data_args.train_split, data_args.max_train_samples, seed=args.seed)
    local_batch = args.per_device_train_batch_size
    check_batch_fits(len(dataset), local_batch, world_size)
    global_batch = local_batch * world_size
    steps_per_epoch = len(dataset) // global_batch
    total_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    warmup_steps = min(total_steps, round(args.warmup_epochs * steps_per_epoch))
    check_snapshot_epochs(args.snapshot_epochs, total_steps // steps_per_epoch)
    peak_lr = args.learning_rate * global_batch / 256  # linear scaling rule

    # Model and optimizer.
    model = build_model(model_args, augmentation)
    settings = resume_settings(model.config, dataset, args.optimizer, global_batch, total_steps, warmup_steps)
    if checkpoint is not None:
        check_resume_settings(checkpoint, settings)  # before decoding the data and loading the state
    if args.sync_batchnorm and world_size > 1 and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # the paper's global BN
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, args, peak_lr)
    if augment_on == "gpu":
        cache = decoded_cache_file(data_args.decoded_cache_dir, dataset, augmentation.image_size)
        images = decode_images(dataset, augmentation.image_size, cache).to(device)
        batches = DeviceBatches(images, local_batch, rank, world_size, args.seed)
        augment = GPUTwoViewAugmentation(augmentation).to(device)
        model, optimizer = accelerator.prepare(model, optimizer)
    else:
        loader = torch.utils.data.DataLoader(
            ImageViewDataset(dataset, two_view_batch_transform(augmentation)),
            batch_size=local_batch, shuffle=True, drop_last=True, num_workers=data_args.dataloader_num_workers,
            pin_memory=device.type == "cuda", persistent_workers=data_args.dataloader_num_workers > 0,
        )  # fmt: skip
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    if args.torch_compile:
        model = torch.compile(model)
    if augment_on == "gpu":
        # The parameter draw uses a torch.Generator, which compile cannot trace; the augmentation
        # itself is deterministic with fixed shapes (compiled: ~9x faster at 32px on an H100).
        augment_views = torch.compile(augment.augment) if args.torch_compile else augment.augment
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        accelerator.print(f"Resumed from {checkpoint} at step {state.step}.")

    monitor = None
    if args.knn_every_epochs > 0 and data_args.eval_split and accelerator.is_main_process:
        train_images = images if augment_on == "gpu" else None
        monitor = build_knn_monitor(data_args, dataset, train_images, augmentation, args.knn_k, args.seed)
        if monitor is not None:
            accelerator.print(
                "kNN monitor every {} epochs: {} training images as memory, {} {} images as queries.".format(
                    args.knn_every_epochs, *monitor.sizes, data_args.eval_split
                )
            )
    run_config = run_arguments(model_args, data_args, args)
    run_config.update(global_batch_size=global_batch, num_processes=world_size, peak_learning_rate=peak_lr,
                      total_steps=total_steps, augment_on=augment_on, augmentation=augmentation.to_dict())  # fmt: skip
    accelerator.init_trackers(TRACKER_PROJECT, config={k: str(v) for k, v in run_config.items()})
    accelerator.print(
        f"SimCLR: {len(dataset)} images, global batch {global_batch} ({local_batch} x {world_size} processes), "
        f"{total_steps} steps, peak lr {peak_lr:.4g} ({args.optimizer}), views on {augment_on}, device {device}."
    )

    log_file = output_dir / LOG_FILE
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process and not args.resume_from_checkpoint:
        log_file.write_text("")  # a fresh run starts a fresh log; a resumed one appends
    generator = torch.Generator(device=device)
    first_bad_step = torch.full((), -1, device=device)  # set on device: no host sync per step
    running = {"loss": torch.zeros((), device=device), "top1": torch.zeros((), device=device)}
    interval_start, interval_steps = time.time(), 0
    checkpoint_every = {"epoch": steps_per_epoch, "none": None}.get(args.checkpointing_steps)
    if args.checkpointing_steps.isdigit():
        checkpoint_every = int(args.checkpointing_steps)
    progress = tqdm(total=total_steps, initial=state.step, disable=not accelerator.is_local_main_process)
    model.train()
    while state.step < total_steps:
        epoch, start_batch = divmod(state.step, steps_per_epoch)
        if augment_on == "gpu":
            epoch_batches = batches.epoch(epoch, start_batch)
        else:
            loader.set_epoch(epoch)
            epoch_batches = accelerator.skip_first_batches(loader, start_batch) if start_batch else loader
        for batch in epoch_batches:
            if state.step >= total_steps:
                break
            if augment_on == "gpu":
                generator.manual_seed(args.seed * 1_000_003 + state.step * world_size + rank)
                params = augment.sample_params(2 * batch.shape[0], *batch.shape[2:], device, generator)
                pixel_values = augment_views(batch, params)
            else:
                pixel_values = split_views(batch["pixel_values"])  # (2B, 3, S, S)
            if device.type == "cuda":
                pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
            lr = learning_rate_at(state.step, total_steps, warmup_steps, peak_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            output = model(pixel_values=pixel_values)
            accelerator.backward(output.loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            loss = output.loss.detach()
            first_bad_step = torch.where(
                (first_bad_step < 0) & ~torch.isfinite(loss),
                torch.full_like(first_bad_step, state.step),
                first_bad_step,
            )
            running["loss"] += loss
            running["top1"] += output.contrastive_top1.detach()
            state.step += 1
            interval_steps += 1
            progress.update(1)

            at_epoch_end = state.step % steps_per_epoch == 0
            at_checkpoint = checkpoint_every is not None and (
                state.step % checkpoint_every == 0 or state.step == total_steps
            )
            # Logging syncs with the device; it also runs before each checkpoint, so that no checkpoint
            # holds weights that a non-finite loss has already spoiled.
            if state.step % args.logging_steps == 0 or at_epoch_end or at_checkpoint:
                bad = int(first_bad_step.item())  # updates applied before the non-finite loss
                if bad >= 0:
                    kept = drop_checkpoints_from(accelerator, output_dir, bad)
                    raise FloatingPointError(
                        f"Non-finite loss at step {bad + 1}; stopping. Last good checkpoint: {kept or 'none'} "
                        "(later ones hold the weights that gave it and were removed). Lower --learning_rate, "
                        "or use --mixed_precision bf16 instead of fp16."
                    )
                seconds = time.time() - interval_start
                # Mean over processes: each process's loss covers its own anchors only.
                totals = accelerator.reduce(torch.stack([running["loss"], running["top1"]]), reduction="mean")
                record = {
                    "step": state.step,
                    "epoch": round(state.step / steps_per_epoch, 4),
                    "loss": totals[0].item() / interval_steps,
                    "learning_rate": lr,
                    "contrastive_top1": totals[1].item() / interval_steps,
                    "images_per_second": interval_steps * global_batch / seconds,
                }
                progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.3g}",
                                     top1=f"{record['contrastive_top1']:.3f}",
                                     img_s=f"{record['images_per_second']:.0f}")  # fmt: skip
                log_record(accelerator, log_file, record)
                running = {key: torch.zeros_like(value) for key, value in running.items()}
                interval_start, interval_steps = time.time(), 0
            if at_epoch_end and monitor is not None:
                completed = state.step // steps_per_epoch
                if completed % args.knn_every_epochs == 0 or state.step == total_steps:
                    encoder = accelerator.unwrap_model(model).simclr
                    monitor_start = time.time()
                    knn = monitor(encoder, device, progress=accelerator.is_local_main_process)
                    log_record(accelerator, log_file, {"step": state.step, "epoch": completed, "knn_top1": knn,
                                                       "knn_seconds": round(time.time() - monitor_start, 2)})  # fmt: skip
                    interval_start = time.time()
            if at_epoch_end and state.step // steps_per_epoch in args.snapshot_epochs:
                # Before the checkpoint: a run resumed from it has already written this snapshot.
                save_snapshot(accelerator, model, output_dir, state.step // steps_per_epoch, augmentation,
                              {**run_config, "steps": state.step})  # fmt: skip
            if at_checkpoint:
                if not weights_are_finite(model):  # e.g. BatchNorm statistics, which the loss does not see
                    kept = drop_checkpoints_from(accelerator, output_dir, state.step)
                    raise FloatingPointError(
                        f"Non-finite weights after step {state.step}; stopping. Last good checkpoint: "
                        f"{kept or 'none'}. Lower --learning_rate, or use --mixed_precision bf16 instead of fp16."
                    )
                save_checkpoint(accelerator, output_dir, state.step, args.checkpoints_total_limit, settings)
    progress.close()

    wall_time = time.time() - started
    summary = {"steps": state.step, "steps_per_epoch": steps_per_epoch, "global_batch_size": global_batch,
               "wall_time_seconds": wall_time,
               "device": device_description(world_size if device.type == "cuda" else 1)}  # fmt: skip
    accelerator.wait_for_everyone()
    if not weights_are_finite(model):  # checked at every checkpoint too; this run may have taken none
        raise FloatingPointError(
            f"Non-finite weights after step {state.step}; the model is not saved. Lower --learning_rate, "
            "or use --mixed_precision bf16 instead of fp16."
        )
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        save_model_folder(unwrapped, output_dir, augmentation, {**run_config, **summary})
        if args.push_to_hub:
            # No probe has run yet: results.json and the card come with scripts/push_to_hub.py later.
            push_model_folder(
                output_dir, args.hub_model_id, private=args.hub_private_repo, require_results=False
            )
    accelerator.end_training()
    return summary


def save_snapshot(
    accelerator: Accelerator,
    model: nn.Module,
    output_dir: Path,
    epoch: int,
    augmentation: AugmentationConfig,
    training_args: dict[str, Any],
) -> Path | None:
    """Keep the encoder at the end of `epoch` in `<output_dir>/snapshots/epoch_N` (main process only).

    The folder holds what `AutoModel.from_pretrained` needs (config, weights of f(.) only, image processor,
    code files) and `training_args.json` with the step reached; no optimizer state, so it is a picture
    of the representation, not a point to resume from. It is written under a temporary name and renamed
    into place, and checkpoint pruning never touches it.

    Returns:
        The snapshot folder on the main process, None on the others.

    Raises:
        FloatingPointError: if the weights hold NaN or infinity (nothing is written).
    """
    if not weights_are_finite(model):  # on every process, so that all of them stop
        raise FloatingPointError(
            f"Non-finite weights at the end of epoch {epoch}; no snapshot written. Lower --learning_rate, "
            "or use --mixed_precision bf16 instead of fp16."
        )
    if not accelerator.is_main_process:
        return None
    root = output_dir / SNAPSHOT_DIR
    final, staging = root / f"epoch_{epoch}", root / f".tmp-epoch_{epoch}"
    shutil.rmtree(staging, ignore_errors=True)
    encoder = accelerator.unwrap_model(model).simclr
    save_model_folder(encoder, staging, augmentation, {**training_args, "snapshot_epoch": epoch})
    if final.exists():  # a resumed run writes it again: the same weights, as resume is exact
        shutil.rmtree(final)
    os.replace(staging, final)
    return final


def log_record(accelerator: Accelerator, log_file: Path, record: dict[str, Any]) -> None:
    """Send a record to the trackers and append it to `log_history.jsonl` (main process only)."""
    accelerator.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])
    if accelerator.is_main_process:
        with log_file.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
