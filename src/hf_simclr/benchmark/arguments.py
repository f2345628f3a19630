"""Arguments of `scripts/benchmark.py`, and the cases the training benchmark times."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..arguments import UsageError, check_arguments
from ..conditions import Applies, Fact, setting_is
from ..paths import READ_DIR_OR_HUB, WRITE_DIR, WRITE_FILE, check_paths


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


MODES = ("data", "training", "memory", "gather", "decode", "objectives")


def for_modes(modes: tuple[str, ...], *names: str) -> dict[str, Applies]:
    """The settings `names`, which the `modes` named time with and no other mode reads."""
    return {name: Applies(setting_is("mode", *modes, among=MODES)) for name in names}


@dataclass
class BenchmarkArguments:
    """Arguments of `scripts/benchmark.py` (and of [`run_benchmark`]). Each mode reads its own settings; training
    times a GPU, whose full-size steps would time the CPU for hours."""

    APPLIES: ClassVar[dict[str, Applies]] = {
        "mode": Applies(
            Fact("cuda"),
            "its steps are sized for a GPU (batches of 256-512, compiled) and would run for hours here; on this "
            "machine, --mode data, memory, gather, decode or objectives",
            for_values=("training",),
            refuse=True,
        ),
        **for_modes(("data", "training", "decode"), "dataset_name"),
        **for_modes(("data", "decode"), "split"),
        **for_modes(
            ("data",), "num_workers", "batch_size", "cifar_batches", "stl10_batches", "stl10_samples"
        ),
        **for_modes(("training",), "work_dir", "cases", "cpu_workers"),
        **for_modes(("memory",), "memory_settings", "memory_steps"),
        **for_modes(("memory", "objectives"), "memory_backbone", "memory_image_size"),
        **for_modes(("objectives",), "objective_batches", "objective_step_chunk", "objective_repeats"),
        **for_modes(("decode",), "decode_workers", "decode_cifar_samples", "decode_photo_samples"),
    }

    mode: str = field(
        metadata={
            "help": "What to time: data (CPU pipeline), training (GPU only), memory (peak memory and time "
            "of a step against the batch and --chunk_size), gather (GB/s of a step's rows gathered from the "
            "memory-mapped decoded cache, against a plain memory copy), decode (images/s against "
            "--preprocessing_num_workers) or objectives (each --objective's loss against NT-Xent's, and against a "
            "ResNet step)."
        }
    )
    output_json: str | None = field(
        default=None,
        metadata={
            "help": "Write the JSON report here (the machine, the command, every row); unset: rows printed only."
        },
    )
    dataset_name: str = field(
        default="uoft-cs/cifar10",
        metadata={
            "help": "CIFAR-10: a Hub name or a local copy (directory of parquet files, save_to_disk folder)."
        },
    )
    split: str = field(default="train", metadata={"help": "The split read."})
    num_workers: list[int] = field(
        default_factory=lambda: [0, 1, 2], metadata={"help": "DataLoader worker counts to time."}
    )
    batch_size: int = field(default=256, metadata={"help": "Images per batch."})
    cifar_batches: int = field(
        default=32, metadata={"help": "Batches timed per 32px setting (after 2 warm-up)."}
    )
    stl10_batches: int = field(
        default=12, metadata={"help": "Batches timed per 96px setting (after 2 warm-up)."}
    )
    stl10_samples: int = field(
        default=4096, metadata={"help": "CIFAR-10 images upsampled to 96px for that case."}
    )
    work_dir: str = field(default="outputs/benchmark-training", metadata={"help": "Scratch folder."})
    cases: list[str] | None = field(
        default=None,
        metadata={"help": f"A subset of {[case.name for case in TRAINING_CASES]} (default: all)."},
    )
    cpu_workers: int | None = field(
        default=None, metadata={"help": "CPU pipeline workers (default: all cores)."}
    )
    memory_settings: list[str] = field(
        default_factory=lambda: ["64:64", "256:256", "256:128", "256:64", "256:32", "1024:64", "1024:1024"],
        metadata={"help": "Batch:chunk settings, each in its own process (256:256: no chunks)."},
    )
    memory_backbone: str = field(default="resnet18", metadata={"help": "The timm backbone."})
    memory_image_size: int = field(default=32, metadata={"help": "The view size."})
    memory_steps: int = field(default=2, metadata={"help": "Steps per setting (after the first: timed)."})
    objective_batches: list[int] = field(
        default_factory=lambda: [256, 1024],
        metadata={"help": "Batches (images per step) to time the objectives at."},
    )
    objective_step_chunk: int = field(
        default=256,
        metadata={
            "help": "Images per forward pass of the ResNet step the objectives are set against (--chunk_size: a "
            "CPU holds a batch of 1,024's activations only in chunks)."
        },
    )
    objective_repeats: int = field(
        default=20, metadata={"help": "Timed calls of each loss (the median is kept)."}
    )
    decode_workers: list[int] = field(
        default_factory=lambda: [1, 2], metadata={"help": "Worker counts to time."}
    )
    decode_cifar_samples: int = field(default=10_000, metadata={"help": "CIFAR-10 images decoded to 32 px."})
    decode_photo_samples: int = field(
        default=600, metadata={"help": "Photo-sized JPEGs decoded to 96 and 224 px."}
    )

    def __post_init__(self) -> None:
        check_paths(self, {"output_json": WRITE_FILE, "dataset_name": READ_DIR_OR_HUB, "work_dir": WRITE_DIR})
        names = [case.name for case in TRAINING_CASES]
        check_arguments(
            self,
            {
                "mode": (
                    self.mode in MODES,
                    "data, training, memory, gather, decode or objectives",
                ),
                "objective_batches": (
                    bool(self.objective_batches) and min(self.objective_batches) >= 2,
                    "batches of at least 2 images",
                ),
                "objective_step_chunk": (self.objective_step_chunk >= 1, "a positive integer"),
                "objective_repeats": (self.objective_repeats >= 1, "a positive integer"),
                "decode_workers": (
                    bool(self.decode_workers) and min(self.decode_workers) >= 1,
                    "worker counts >= 1",
                ),
                "decode_cifar_samples": (self.decode_cifar_samples >= 1, "a positive integer"),
                "decode_photo_samples": (self.decode_photo_samples >= 1, "a positive integer"),
                "memory_settings": (
                    all(valid_memory_setting(setting) for setting in self.memory_settings),
                    "batch:chunk pairs such as 1024:64, the chunk dividing the batch",
                ),
                "memory_image_size": (self.memory_image_size >= 8, "at least 8 pixels"),
                "memory_steps": (self.memory_steps >= 1, "a positive integer"),
                "num_workers": (bool(self.num_workers) and min(self.num_workers) >= 0, "worker counts >= 0"),
                "batch_size": (self.batch_size >= 1, "a positive integer"),
                "cifar_batches": (self.cifar_batches >= 1, "a positive integer"),
                "stl10_batches": (self.stl10_batches >= 1, "a positive integer"),
                "stl10_samples": (self.stl10_samples >= 1, "a positive integer"),
                "cases": (all(case in names for case in self.cases or []), f"some of {names}"),
                "cpu_workers": (self.cpu_workers is None or self.cpu_workers >= 1, "a positive integer"),
            },
        )

    def check(self) -> None:
        """The check that needs timm (run after parsing): `--memory_backbone` is a timm model."""
        import timm

        if not timm.is_model(self.memory_backbone):
            raise UsageError(
                f"--memory_backbone {self.memory_backbone!r} is not a timm model; pick one of "
                f"timm.list_models('resnet*'), e.g. resnet18."
            )


def valid_memory_setting(setting: str) -> bool:
    """`batch:chunk` with positive integers, the chunk dividing the batch."""
    parts = setting.split(":")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        return False
    return int(parts[0]) % int(parts[1]) == 0
