"""What a pretraining run is: the model, the data and views, and how long and how to optimise.

Each dataclass checks its values when the arguments are parsed ([`hf_simclr.arguments.check_arguments`],
[`hf_simclr.paths.check_paths`]), before any data is loaded; the checks that build the model's config
and the augmentation (which need torch) run in `check()`, also before any data. Every hyperparameter has
its unit and a tuning hint in its help. Nothing heavy is imported here: `--help` answers at once.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..arguments import UsageError, as_usage_error, check_arguments
from ..augmentation import FLAGS
from ..augmentation_arguments import augmentation_arguments
from ..dataset_arguments import DatasetArguments
from ..paths import READ_DIR, READ_DIR_OR_HUB, WRITE_DIR, check_path, check_paths, check_repo_id

if TYPE_CHECKING:
    from ..augmentation import AugmentationConfig
    from ..configuration_simclr import SimCLRConfig

# The trackers Accelerate logs to (`--report_to`).
TRACKERS = ("tensorboard", "wandb", "comet_ml", "mlflow", "clearml", "dvclive", "aim", "swanlab", "trackio")

# Base learning rates for a global batch of 256 (scaled linearly, Goyal et al. 2017) and weight decay.
OPTIMIZER_DEFAULTS = {
    "lars": {"learning_rate": 0.3, "weight_decay": 1e-6},  # SimCLR paper, Appendix B.1
    "sgd": {"learning_rate": 0.06, "weight_decay": 5e-4},  # common CIFAR recipe
    "adamw": {"learning_rate": 1e-3, "weight_decay": 1e-4},
}


def config_settings() -> list[tuple[str, Any, Any]]:
    """`SimCLRConfig`'s settings as dataclass fields `(name, type, field)`, read from its source without
    importing it (that imports torch): each `__init__` parameter with its default and, as its help, the
    class docstring's entry. The view size (`image_size`) comes from the data, not from a flag; the two
    settings whose command line differs from the config say how (`CLI_SETTINGS`)."""
    source = Path(__file__).resolve().parents[1].joinpath("configuration_simclr.py").read_text()
    config = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "SimCLRConfig"
    )
    docs = dict(
        re.findall(r"^ {8}(\w+) \(.*?\):\n((?: {12}.*\n)+)", ast.get_docstring(config, clean=False), re.M)
    )
    init = next(node for node in config.body if isinstance(node, ast.FunctionDef) and node.name == "__init__")
    settings = []
    for argument, default in zip(init.args.args[1:], init.args.defaults, strict=True):
        name = argument.arg
        if name == "image_size":
            continue
        kind, value, note = CLI_SETTINGS.get(
            name, (eval(ast.unparse(argument.annotation), {"Any": Any}), ast.literal_eval(default), "")
        )
        help = " ".join(docs[name].split()) + note
        settings.append((name, kind, field(default=value, metadata={"help": help})))
    return settings


# The config settings whose command line differs from the config: (type, default, note for the help).
CLI_SETTINGS = {
    "cifar_stem": (bool | None, None, " Default on the command line: on for views of at most 64 px."),
    "backbone_kwargs": (
        str | None,
        None,
        """ On the command line: a JSON dict, e.g. '{"drop_path_rate": 0.1}'.""",
    ),
}


@dataclass
class _ModelStart:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from this SimCLR folder or Hub id instead of a fresh model."}
    )


@dataclass
class ModelArguments(make_dataclass("ConfigArguments", config_settings(), bases=(_ModelStart,))):
    """Architecture of the model to pretrain: `SimCLRConfig`'s settings (generated from it, so every one of
    its settings is a flag with its documentation as help), and a model to start from."""

    def __post_init__(self) -> None:
        check_path("model_name_or_path", self.model_name_or_path, READ_DIR_OR_HUB)
        check_arguments(
            self,
            {
                "backbone_kwargs": (
                    self.backbone_kwargs_dict() is not None,
                    """a JSON dict, e.g. '{"drop_path_rate": 0.1}'""",
                ),
            },
        )

    def check(self) -> None:
        """The checks that build the config (torch): every `SimCLRConfig` value, the backbone's name."""
        if self.model_name_or_path is None:
            self.config(image_size=224)  # the view size is checked with the data
            with as_usage_error(MODEL_FLAGS):
                from ..modeling_simclr import create_backbone

                create_backbone(self.config(image_size=224))

    def backbone_kwargs_dict(self) -> dict | None:
        """`--backbone_kwargs` as a dict (None when it is not a JSON dict)."""
        try:
            value = json.loads(self.backbone_kwargs) if self.backbone_kwargs else {}
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def config(self, image_size: int) -> SimCLRConfig:
        """The `SimCLRConfig` these arguments describe, for views of `image_size` pixels.

        Raises:
            UsageError: for a value the config refuses, named as its flag.
        """
        from ..configuration_simclr import SimCLRConfig

        settings = {name: getattr(self, name) for name in CONFIG_FLAGS}
        settings["cifar_stem"] = image_size <= 64 if self.cifar_stem is None else self.cifar_stem
        settings["backbone_kwargs"] = self.backbone_kwargs_dict()
        with as_usage_error(MODEL_FLAGS):
            return SimCLRConfig(**settings, image_size=image_size)


# Every flag of the recipe, each unset by default: the preset's value applies.
ViewArguments = augmentation_arguments("ViewArguments", tuple(FLAGS), note="the preset")


@dataclass
class DataArguments(ViewArguments, DatasetArguments):
    """Where the images come from ([`DatasetArguments`]) and how the two views are made (the preset, and
    the recipe's flags generated from `AugmentationConfig`)."""

    DEFAULT_DATASET = "uoft-cs/cifar10"

    preset: str = field(
        default="cifar10", metadata={"help": "Augmentation preset: cifar10, stl10, imagenet."}
    )
    augment_on: str = field(
        default="auto",
        metadata={
            "help": "gpu: batched on the training device (fast); cpu: torchvision in workers; auto: gpu."
        },
    )
    keep_decoded_on: str = field(
        default="auto",
        metadata={
            "help": "With GPU views, where the decoded training split is kept. device: all of it in the "
            "training device's memory (fastest); host: a memory-mapped .npy file (in --decoded_cache_dir, "
            "else in the datasets cache), each step's rows gathered two steps ahead by a background thread "
            "into pinned memory and copied to the device, so host memory stays bounded whatever the split's "
            "size; the views are the same either way. auto: device when the split takes at most half of "
            "the device's free memory (on a CPU: of the host's available memory over this machine's "
            "processes), else host."
        },
    )
    dataloader_num_workers: int = field(default=4, metadata={"help": "--augment_on cpu: DataLoader workers."})
    decoded_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder for the decoded uint8 splits (.npy, memory-mapped, named by the data's content and "
            "size; shared by runs, the kNN monitor and the probe). Unset: a split is decoded into memory, or, "
            "streamed (--keep_decoded_on) or beyond half of the host's available memory, into the datasets "
            "cache (HF_DATASETS_CACHE/hf_simclr_decoded)."
        },
    )
    stored_image_size: int | None = field(
        default=None,
        metadata={
            "help": "With GPU views, the side the training split is decoded to (default: --image_size). Larger "
            "(e.g. 160 for 96 px views), random resized crops take their pixels from more than the view's "
            "resolution and are downscaled with antialiasing, as torchvision does from the original images; "
            "the split then takes (stored / image_size)^2 times the memory or disk."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_augmentation()
        check_paths(self, {"decoded_cache_dir": WRITE_DIR})
        check_arguments(
            self,
            {
                "augment_on": (self.augment_on in ("auto", "gpu", "cpu"), "gpu, cpu or auto"),
                "keep_decoded_on": (
                    self.keep_decoded_on == "auto"
                    or (self.keep_decoded_on in ("device", "host") and self.augment_on != "cpu"),
                    "device, host or auto; device and host apply to GPU views (--augment_on cpu decodes "
                    "in its workers)",
                ),
                "dataloader_num_workers": (
                    self.dataloader_num_workers >= 0,
                    ">= 0 (0: decode in the main process)",
                ),
                "stored_image_size": (
                    self.stored_image_size is None
                    or (
                        self.stored_image_size >= self.augmentation().image_size and self.augment_on != "cpu"
                    ),
                    f"at least the view's --image_size ({self.augmentation().image_size}), and only with GPU "
                    "views (--augment_on cpu crops the original images)",
                ),
            },
        )

    def check(self) -> None:
        """The checks that build the recipe: the preset with every flag (also run from Python, by start_run)."""
        self.augmentation()

    def check_typed(self, typed: set[str]) -> None:
        """Refuse `--dataloader_num_workers` typed for GPU views, which use no DataLoader workers."""
        if "dataloader_num_workers" in typed and self.augment_on != "cpu":
            raise UsageError(
                f"--dataloader_num_workers {self.dataloader_num_workers} sets the DataLoader workers of "
                f"--augment_on cpu; GPU views (--augment_on {self.augment_on}) use none. Leave it out, or pass "
                f"--augment_on cpu (the decoding's workers are --preprocessing_num_workers)."
            )

    def augmentation(self) -> AugmentationConfig:
        """The recipe: the preset with every flag set here.

        Raises:
            UsageError: for an unknown preset, or values the recipe refuses together (e.g. a minimum crop
                above the maximum).
        """
        from ..augmentation import augmentation_preset

        with as_usage_error(DATA_FLAGS):
            return self.augmentation_from(augmentation_preset(self.preset))


@dataclass
class PretrainingArguments:
    """How long and how to optimise; saved with every checkpoint and the final model."""

    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Model folder, checkpoints/ and logs are written here; default: "
            "runs/simclr-<dataset>-<backbone>, e.g. runs/simclr-cifar10-resnet18."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start afresh in an --output_dir that holds another run: its checkpoints, model, "
            "logs and probe results are deleted first. Without it, such a folder is refused."
        },
    )
    num_train_epochs: float = field(default=100, metadata={"help": "Epochs (paper: 100-1000; longer helps)."})
    max_steps: int = field(default=-1, metadata={"help": "If > 0, train this many steps, ignoring epochs."})
    per_device_train_batch_size: int = field(
        default=256,
        metadata={"help": "Images per process; the global batch (x processes) sets the negatives."},
    )
    chunk_size: int | None = field(
        default=None,
        metadata={
            "help": "Images per forward pass, for a batch larger than memory: cached-gradient chunks keep "
            "every negative of the batch (unlike gradient accumulation) and cost one extra forward; "
            "BatchNorm normalises each chunk on its own, as a GPU without SyncBatchNorm does. Must divide "
            "--per_device_train_batch_size; default: the whole batch. A resume may change it. (Not Trainer's "
            "--gradient_accumulation_steps, whose steps would each see only their own negatives.)"
        },
    )
    optimizer: str = field(default="lars", metadata={"help": "lars (paper), sgd or adamw."})
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Base LR for a global batch of 256: lr = learning_rate * global_batch / 256. "
            "Default: 0.3 for LARS (paper), 0.06 for SGD, 1e-3 for AdamW."
        },
    )
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
    torch_compile: bool | None = field(
        default=None,
        metadata={
            "help": "torch.compile the model and the GPU views (faster after a ~1 min compile); default: "
            "on with CUDA, off on CPU (where the first step would take minutes)."
        },
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
        default=2,
        metadata={
            "help": "Keep the last K checkpoints (0: all): Trainer's --save_total_limit, the same pruning (the "
            "oldest goes once a newer one is written). Snapshots (--snapshot_epochs) are never deleted."
        },
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
        metadata={
            "help": "Upload the final folder to --hub_model_id; run linear_probe.py and push_to_hub.py "
            "afterwards to add results.json and the model card."
        },
    )
    hub_model_id: str | None = field(
        default=None, metadata={"help": "With --push_to_hub: the Hub repo, e.g. org/simclr-resnet18-stl10."}
    )
    hub_private_repo: bool = field(default=False, metadata={"help": "With --push_to_hub: a private repo."})
    snapshot_epochs: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated epochs, e.g. 1,25,50,100: keep the encoder (weights + config, an "
            "AutoModel folder, not a resumable checkpoint) in <output_dir>/snapshots/epoch_N, never "
            "pruned; for studying how the representation matures."
        },
    )

    def __post_init__(self) -> None:
        check_arguments(
            self,
            {
                "optimizer": (
                    self.optimizer in OPTIMIZER_DEFAULTS,
                    f"one of {', '.join(OPTIMIZER_DEFAULTS)}",
                ),
                "mixed_precision": (
                    self.mixed_precision in ("auto", "no", "bf16", "fp16"),
                    "no, bf16, fp16 or auto",
                ),
                "report_to": (
                    self.report_to in ("all", "none", *TRACKERS),
                    f"all, none or one of {', '.join(TRACKERS)}",
                ),
            },
        )
        defaults = OPTIMIZER_DEFAULTS[self.optimizer]
        if self.learning_rate is None:
            self.learning_rate = defaults["learning_rate"]
        if self.weight_decay is None:
            self.weight_decay = defaults["weight_decay"]
        check_arguments(self, self._bounds())
        self._check_run_folder_and_hub()
        self.snapshot_epochs = parse_snapshot_epochs(self.snapshot_epochs)
        if self.max_steps <= 0:  # with --max_steps the last epoch is known once the data is loaded
            check_snapshot_epochs(self.snapshot_epochs, math.floor(self.num_train_epochs))

    def _bounds(self) -> dict[str, tuple[bool, str]]:
        """Each numeric setting's range: (whether the value is in it, the range as the message says it)."""
        finite, every = math.isfinite, self.checkpointing_steps
        return {
            "num_train_epochs": (
                (finite(self.num_train_epochs) and self.num_train_epochs > 0) or self.max_steps > 0,
                "> 0 (or give --max_steps)",
            ),
            "max_steps": (
                self.max_steps == -1 or self.max_steps > 0,
                "a positive number of steps, or -1 to train for --num_train_epochs",
            ),
            "per_device_train_batch_size": (self.per_device_train_batch_size >= 1, "a positive integer"),
            "chunk_size": (
                self.chunk_size is None
                or (self.chunk_size >= 1 and self.per_device_train_batch_size % self.chunk_size == 0),
                f"a divisor of --per_device_train_batch_size {self.per_device_train_batch_size} (images per "
                f"forward pass), e.g. {largest_divisor(self.per_device_train_batch_size, self.chunk_size)}",
            ),
            "learning_rate": (
                finite(self.learning_rate) and self.learning_rate > 0,
                "> 0 (the base rate for a global batch of 256)",
            ),
            "weight_decay": (finite(self.weight_decay) and self.weight_decay >= 0, ">= 0"),
            "momentum": (0 <= self.momentum < 1, "in [0, 1), e.g. 0.9"),
            "warmup_epochs": (
                finite(self.warmup_epochs) and self.warmup_epochs >= 0,
                ">= 0 (0: no warmup)",
            ),
            "seed": (0 <= self.seed < 2**32, "in [0, 2**32)"),
            "logging_steps": (self.logging_steps >= 1, "a positive integer"),
            "checkpointing_steps": (
                every in ("epoch", "none") or (every.isdigit() and int(every) > 0),
                "a positive integer, 'epoch' or 'none'",
            ),
            "checkpoints_total_limit": (
                self.checkpoints_total_limit >= 0,
                ">= 0 (0: keep every checkpoint)",
            ),
            "knn_every_epochs": (self.knn_every_epochs >= 0, ">= 0 (0: no kNN monitor)"),
            "knn_k": (self.knn_k >= 1, "a positive integer"),
        }

    def _check_run_folder_and_hub(self) -> None:
        check_path("output_dir", self.output_dir, WRITE_DIR)
        if self.resume_from_checkpoint not in (None, "latest"):
            check_path("resume_from_checkpoint", self.resume_from_checkpoint, READ_DIR)
        if self.overwrite_output_dir and self.resume_from_checkpoint:
            raise UsageError(
                "--overwrite_output_dir deletes the run that --resume_from_checkpoint continues: give one of them "
                "(resume an interrupted run, or start afresh)."
            )
        if self.push_to_hub and not self.hub_model_id:
            raise UsageError("--push_to_hub needs --hub_model_id (e.g. org/simclr-resnet18-stl10).")
        if self.push_to_hub:
            check_repo_id(self.hub_model_id, "hub_model_id")
        for flag, value in (("hub_model_id", self.hub_model_id), ("hub_private_repo", self.hub_private_repo)):
            if value and not self.push_to_hub:  # else nothing would be uploaded, and nothing said
                raise UsageError(
                    f"--{flag} is for the upload that --push_to_hub makes at the end of the run: add --push_to_hub, "
                    f"or leave --{flag} out (scripts/push_to_hub.py uploads a folder later)."
                )

    def check_typed(self, typed: set[str]) -> None:
        """Refuse `--knn_k` typed with the kNN monitor off (its default cannot tell whether it was typed)."""
        if "knn_k" in typed and self.knn_every_epochs == 0:
            raise UsageError(
                f"--knn_k {self.knn_k} sets the kNN monitor, which --knn_every_epochs 0 turns off: leave --knn_k "
                f"out, or give --knn_every_epochs N (the probe's neighbours are scripts/linear_probe.py --knn_k)."
            )


def largest_divisor(number: int, at_most: int | None) -> int:
    """The largest divisor of `number` not above `at_most` (at least 1): the chunk a refused one suggests."""
    limit = max(1, min(number, at_most or number))
    return next(d for d in range(limit, 0, -1) if number % d == 0)


def parse_snapshot_epochs(value: str | list[int] | tuple[int, ...] | None) -> list[int]:
    """`--snapshot_epochs` (`"1,25,50"` or a list of ints) as a sorted list of distinct positive epochs.

    Raises:
        UsageError: for anything that is not a positive integer.
    """
    if value is None or value == "":
        return []
    items = [item.strip() for item in value.split(",")] if isinstance(value, str) else list(value)
    epochs = []
    for item in items:
        if isinstance(item, bool) or not str(item).isdigit() or int(item) < 1:
            raise UsageError(
                f"--snapshot_epochs {value}: {item!r} is not a positive whole epoch; give epochs such as 1,25,50,100."
            )
        epochs.append(int(item))
    return sorted(set(epochs))


def check_snapshot_epochs(epochs: list[int], last_epoch: int) -> None:
    """Refuse snapshot epochs the run never finishes (`last_epoch`: its last complete epoch)."""
    beyond = [epoch for epoch in epochs if epoch > last_epoch]
    if beyond:
        raise UsageError(
            f"--snapshot_epochs: epoch {beyond[0]} is beyond the end of the run, whose last complete epoch is "
            f"{last_epoch}; drop it or train longer (--num_train_epochs / --max_steps)."
        )


def default_output_dir(model_args: ModelArguments, data_args: DataArguments) -> str:
    """The folder a run is named for when `--output_dir` is not given: `runs/simclr-<dataset>-<backbone>`."""
    dataset = re.sub(r"[^\w.-]+", "-", data_args.dataset_name.rstrip("/").split("/")[-1]) or "data"
    return f"runs/simclr-{dataset}-{model_args.backbone}"


MODEL_FLAGS = tuple(f.name for f in fields(ModelArguments))
CONFIG_FLAGS = tuple(
    f.name for f in fields(ModelArguments) if f.name not in {g.name for g in fields(_ModelStart)}
)
DATA_FLAGS = tuple(f.name for f in fields(DataArguments))
PRETRAINING_ARGUMENTS = (ModelArguments, DataArguments, PretrainingArguments)
