"""What a pretraining run is: the model ([`ModelArguments`], `model_arguments`), the data and views
([`DataArguments`], `data_arguments`), and how long and how to optimise ([`PretrainingArguments`], here).

Each dataclass checks its values when the arguments are parsed ([`hf_simclr.arguments.check_arguments`],
[`hf_simclr.paths.check_paths`]), before any data is loaded; the checks that build the model's config
and the augmentation (which need torch) run in `check()`, also before any data. Every hyperparameter has
its unit and a tuning hint in its help. Nothing heavy is imported here: `--help` answers at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import ClassVar

from ..arguments import UsageError, check_arguments
from ..collective import DEFAULT_TIMEOUT_SECONDS
from ..conditions import (
    Applies,
    Fact,
    SettingGiven,
    SettingIsNot,
    all_of,
    setting_is,
)
from ..paths import READ_DIR, WRITE_DIR, check_path, check_repo_id
from .data_arguments import KNN_MONITOR, DataArguments
from .model_arguments import ModelArguments

# The trackers Accelerate logs to (`--report_to`).
TRACKERS = ("tensorboard", "wandb", "comet_ml", "mlflow", "clearml", "dvclive", "aim", "swanlab", "trackio")

# Base learning rates for a global batch of 256 (scaled linearly, Goyal et al. 2017) and weight decay.
OPTIMIZER_DEFAULTS = {
    "lars": {"learning_rate": 0.3, "weight_decay": 1e-6},  # SimCLR paper, Appendix B.1
    "sgd": {"learning_rate": 0.06, "weight_decay": 5e-4},  # common CIFAR recipe
    "adamw": {"learning_rate": 1e-3, "weight_decay": 1e-4},
}


_LATER_UPLOAD = "the upload at the end of the run; scripts/push_to_hub.py uploads a folder later"

# The objectives (`--objective`): `hf_simclr.loss.OBJECTIVES`, named here without importing torch.
OBJECTIVES = ("nt_xent", "dcl", "dclw", "sogclr")


@dataclass
class PretrainingArguments:
    """How long and how to optimise; saved with every checkpoint and the final model."""

    APPLIES: ClassVar[dict[str, Applies]] = {
        "num_train_epochs": Applies(
            setting_is("max_steps", -1, among=(-1, 1)), "--max_steps N sets the run's length instead"
        ),
        "momentum": Applies(
            setting_is("optimizer", "lars", "sgd", among=tuple(OPTIMIZER_DEFAULTS)), "AdamW has its betas"
        ),
        "mixed_precision": Applies(
            Fact("cuda"),
            "on a CPU accelerate does not apply fp16, and the run would compute in fp32 while recording fp16; "
            "--mixed_precision bf16 applies on a CPU too",
            for_values=("fp16",),
            refuse=True,
        ),
        "sync_batchnorm": Applies(
            all_of(Fact("several_processes"), Fact("cuda")),
            "one process normalises the global batch already; torch's SyncBatchNorm needs CUDA, so each CPU "
            "process normalises its own images",
            off=False,
        ),
        "ddp_timeout": Applies(Fact("several_processes"), "one process waits for no other"),
        "checkpoints_total_limit": Applies(
            SettingIsNot("checkpointing_steps", ("none",)), "the checkpoints it prunes"
        ),
        "knn_every_epochs": Applies(
            all_of(SettingGiven("eval_split"), Fact("labels")),
            "scripts/linear_probe.py evaluates the model after the run",
            off=0,
            said_at_default=True,
        ),
        "knn_k": Applies(
            KNN_MONITOR, "the kNN monitor's neighbours; the probe's are scripts/linear_probe.py --knn_k"
        ),
        "dclw_sigma": Applies(setting_is("objective", "dclw", among=OBJECTIVES), "DCLW's positive weights"),
        "sogclr_gamma": Applies(
            setting_is("objective", "sogclr", among=OBJECTIVES), "SogCLR's moving average of each image's u"
        ),
        "online_linear_head": Applies(
            Fact("labels"),
            "a classifier of the training labels; scripts/linear_probe.py evaluates",
            off=False,
        ),
        "hub_model_id": Applies(SettingGiven("push_to_hub"), _LATER_UPLOAD),
        "hub_private_repo": Applies(SettingGiven("push_to_hub"), _LATER_UPLOAD),
    }

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
    num_train_epochs: float = field(
        default=100,
        metadata={
            "help": "Epochs (paper: 100-1000; longer helps).",
        },
    )
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
    objective: str = field(
        default="nt_xent",
        metadata={
            "help": "The contrastive loss: nt_xent (the paper's), dcl (Yeh et al. 2022: the positive out of the "
            "denominator), dclw (DCL, positives weighted: --dclw_sigma) or sogclr (Yuan et al. 2022: each image's "
            "denominator a moving average over the dataset, --sogclr_gamma; one float per training image, saved in "
            "every checkpoint). DCL and SogCLR are for small batches (64-256), where NT-Xent's negatives are "
            "few; every one takes --loss_temperature (SogCLR's CIFAR runs: 0.3-0.5)."
        },
    )
    dclw_sigma: float = field(
        default=0.5,
        metadata={"help": "DCLW's von Mises-Fisher kernel width sigma (the paper's 0.5)."},
    )
    sogclr_gamma: float = field(
        default=0.9,
        metadata={
            "help": "SogCLR's step gamma of each image's moving average u <- (1 - gamma) u + gamma * the batch's "
            "estimate, in (0, 1] (the official 0.9; 1: DCL)."
        },
    )
    online_linear_head: bool = field(
        default=True,
        metadata={
            "help": "google-research/simclr's online linear head: a linear classifier of the training labels on "
            "stop-gradient h, trained beside the encoder with its own optimizer (no gradient reaches the "
            "encoder), its top-1 on each step's views logged as online_top1. Costs one matmul a step; not "
            "saved with the model (the linear probe is the judged number)."
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
    momentum: float = field(
        default=0.9,
        metadata={
            "help": "Momentum of LARS and SGD.",
        },
    )
    warmup_epochs: float = field(
        default=10, metadata={"help": "Linear warmup before cosine decay (paper: 10)."}
    )
    seed: int = field(default=42, metadata={"help": "Seeds model init, data order and augmentation."})
    mixed_precision: str = field(
        default="auto",
        metadata={
            "help": "no, bf16, fp16, or auto (bf16 on GPU).",
        },
    )
    torch_compile: bool | None = field(
        default=None,
        metadata={
            "help": "torch.compile the model and the GPU views (faster after a ~1 min compile); default: "
            "on with CUDA, off on CPU (where the first step would take minutes)."
        },
    )
    ddp_timeout: int = field(
        default=DEFAULT_TIMEOUT_SECONDS,
        metadata={
            "help": "Seconds a process waits for the others (Trainer's --ddp_timeout; NCCL's own is 10 min): while "
            "the main process works alone (the kNN monitor's checks, snapshots, saves), the others wait for it at "
            "most this long, then every process stops with the same message. Raise it for a monitor of a large "
            "split."
        },
    )
    sync_batchnorm: bool = field(
        default=True,
        metadata={
            "help": "The paper's global BatchNorm: statistics over every process's images (SyncBatchNorm).",
        },
    )
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
            "oldest goes once a newer one is written). Snapshots (--snapshot_epochs) are never deleted.",
        },
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' or a checkpoint path."}
    )
    knn_every_epochs: int = field(
        default=10,
        metadata={
            "help": "kNN monitor every N epochs (0: off): kNN top-1 of the training images' labels voting for "
            "the --eval_split images'.",
        },
    )
    knn_k: int = field(
        default=10,
        metadata={
            "help": "Neighbours of the kNN monitor.",
        },
    )
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
        default=None,
        metadata={
            "help": "The Hub repo, e.g. org/simclr-resnet18-stl10.",
        },
    )
    hub_private_repo: bool = field(
        default=False,
        metadata={
            "help": "A private repo.",
        },
    )
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
                "objective": (self.objective in OBJECTIVES, f"one of {', '.join(OBJECTIVES)}"),
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
            "ddp_timeout": (self.ddp_timeout >= 1, "a positive number of seconds, e.g. 1800"),
            "dclw_sigma": (finite(self.dclw_sigma) and self.dclw_sigma > 0, "> 0, e.g. 0.5 (the paper's)"),
            "sogclr_gamma": (0 < self.sogclr_gamma <= 1, "in (0, 1], e.g. 0.9 (the official default)"),
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


PRETRAINING_ARGUMENTS = (ModelArguments, DataArguments, PretrainingArguments)
