"""Arguments of `scripts/benchmark.py`, and the cases the training benchmark times."""

from __future__ import annotations

import re
from dataclasses import Field, dataclass, field, fields
from typing import Any

from ..arguments import UsageError, check_arguments
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


def for_modes(modes: tuple[str, ...], help: str, **default: Any) -> Any:
    """A setting of the `modes` named: its help begins with them (`--mode data and decode: ...`), which is how
    [`modes_of`] knows them (a typed setting of another mode is refused: [`BenchmarkArguments.check_typed`])."""
    named = " and ".join(filter(None, (", ".join(modes[:-1]), modes[-1])))
    return field(**default, metadata={"help": f"--mode {named}: {help}"})


def modes_of(setting: Field) -> tuple[str, ...]:
    """The modes whose setting `setting` is, as its help begins ([`for_modes`]); empty: every mode's."""
    named = re.match(r"--mode ([\w, ]+):", setting.metadata.get("help", ""))
    return tuple(re.split(r", | and ", named.group(1))) if named else ()


@dataclass
class BenchmarkArguments:
    """Arguments of `scripts/benchmark.py` (and of [`run_benchmark`])."""

    mode: str = field(
        metadata={
            "help": "What to time: data (CPU pipeline), training (GPU only), memory (peak memory and time "
            "of a step against the batch and --chunk_size), gather (GB/s of a step's rows gathered from the "
            "memory-mapped decoded cache, against a plain memory copy) or decode (images/s against "
            "--preprocessing_num_workers)."
        }
    )
    output_json: str | None = field(
        default=None,
        metadata={
            "help": "Write the JSON report here (the machine, the command, every row); unset: rows printed only."
        },
    )
    dataset_name: str = for_modes(
        ("data", "training", "decode"),
        "CIFAR-10: a Hub name or a local copy (directory of parquet files, save_to_disk folder).",
        default="uoft-cs/cifar10",
    )
    split: str = for_modes(("data", "decode"), "the split read.", default="train")
    num_workers: list[int] = for_modes(
        ("data",), "DataLoader worker counts to time.", default_factory=lambda: [0, 1, 2]
    )
    batch_size: int = for_modes(("data",), "images per batch.", default=256)
    cifar_batches: int = for_modes(("data",), "batches timed per 32px setting (after 2 warm-up).", default=32)
    stl10_batches: int = for_modes(("data",), "batches timed per 96px setting (after 2 warm-up).", default=12)
    stl10_samples: int = for_modes(
        ("data",), "CIFAR-10 images upsampled to 96px for that case.", default=4096
    )
    work_dir: str = for_modes(("training",), "scratch.", default="outputs/benchmark-training")
    cases: list[str] | None = for_modes(
        ("training",), f"a subset of {[case.name for case in TRAINING_CASES]} (default: all).", default=None
    )
    cpu_workers: int | None = for_modes(
        ("training",), "CPU pipeline workers (default: all cores).", default=None
    )
    memory_settings: list[str] = for_modes(
        ("memory",),
        "batch:chunk settings, each in its own process (256:256: no chunks).",
        default_factory=lambda: ["64:64", "256:256", "256:128", "256:64", "256:32", "1024:64", "1024:1024"],
    )
    memory_backbone: str = for_modes(("memory",), "the timm backbone.", default="resnet18")
    memory_image_size: int = for_modes(("memory",), "the view size.", default=32)
    memory_steps: int = for_modes(("memory",), "steps per setting (after the first: timed).", default=2)
    decode_workers: list[int] = for_modes(
        ("decode",), "worker counts to time.", default_factory=lambda: [1, 2]
    )
    decode_cifar_samples: int = for_modes(("decode",), "CIFAR-10 images decoded to 32 px.", default=10_000)
    decode_photo_samples: int = for_modes(
        ("decode",), "photo-sized JPEGs decoded to 96 and 224 px.", default=600
    )

    def __post_init__(self) -> None:
        check_paths(self, {"output_json": WRITE_FILE, "dataset_name": READ_DIR_OR_HUB, "work_dir": WRITE_DIR})
        names = [case.name for case in TRAINING_CASES]
        check_arguments(
            self,
            {
                "mode": (
                    self.mode in ("data", "training", "memory", "gather", "decode"),
                    "data, training, memory, gather or decode",
                ),
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

    def check_typed(self, typed: set[str]) -> None:
        """Refuse a setting of another `--mode`, typed on the command line: this mode would not use it."""
        for setting in fields(self):
            modes = modes_of(setting)
            if setting.name in typed and modes and self.mode not in modes:
                own = [f"--{f.name}" for f in fields(self) if self.mode in modes_of(f)]
                raise UsageError(
                    f"--{setting.name} is a setting of --mode {' or '.join(modes)}, not of --mode {self.mode}, "
                    f"which takes {', '.join(own) or 'only --output_json'}: leave it out."
                )


def valid_memory_setting(setting: str) -> bool:
    """`batch:chunk` with positive integers, the chunk dividing the batch."""
    parts = setting.split(":")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        return False
    return int(parts[0]) % int(parts[1]) == 0
