"""Where a run's images come from and how its two views are made: the dataset, the preset and the recipe's
flags, where the views are made and the decoded split kept. Nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar

from ..arguments import as_usage_error, check_arguments
from ..augmentation import FLAGS
from ..augmentation_arguments import augmentation_arguments
from ..conditions import (
    Applies,
    Fact,
    SettingAbove,
    SettingGiven,
    all_of,
    any_of,
    setting_is,
)
from ..dataset_arguments import DatasetArguments, DecodingArguments

if TYPE_CHECKING:
    from ..augmentation import AugmentationConfig


AUGMENT_ON = ("auto", "gpu", "cpu")


# When the settings of a part of the run apply: GPU views (auto is gpu), the kNN monitor (on, with labels in the
# training split to vote with, and queries), something decoded to uint8 (GPU views, or the monitor's images).
GPU_VIEWS = setting_is("augment_on", "gpu", "auto", among=AUGMENT_ON)


MONITOR_ON = all_of(SettingAbove("knn_every_epochs", 0), Fact("labels"))


KNN_MONITOR = all_of(SettingAbove("knn_every_epochs", 0), SettingGiven("eval_split"), Fact("labels"))


DECODES = any_of(GPU_VIEWS, KNN_MONITOR)


# Every flag of the recipe, each unset by default: the preset's value applies.
ViewArguments = augmentation_arguments("ViewArguments", tuple(FLAGS), note="the preset")


@dataclass
class DataArguments(ViewArguments, DecodingArguments, DatasetArguments):
    """Where the images come from ([`DatasetArguments`]) and how the two views are made (the preset, and
    the recipe's flags generated from `AugmentationConfig`); the decoded split's settings
    ([`DecodingArguments`]) apply where something is decoded: GPU views, or the kNN monitor's images."""

    DEFAULT_DATASET = "uoft-cs/cifar10"
    # The dataset's and the decoding's settings that pretraining reads under a condition of its own, and the
    # views' that apply to one kind of views.
    APPLIES: ClassVar[dict[str, Applies]] = {
        "keep_decoded_on": Applies(GPU_VIEWS, "CPU views decode in their workers"),
        "stored_image_size": Applies(GPU_VIEWS, "CPU views crop the original images"),
        "dataloader_num_workers": Applies(
            setting_is("augment_on", "cpu"),
            "GPU views use none; the decoding's workers are --preprocessing_num_workers",
        ),
        "eval_split": Applies(MONITOR_ON, "the kNN monitor's queries"),
        "max_eval_samples": Applies(KNN_MONITOR, "the kNN monitor's queries"),
        "label_column": Applies(KNN_MONITOR, "the kNN monitor's labels"),
        "decoded_cache_dir": Applies(
            DECODES, "GPU views and the kNN monitor decode; CPU views decode in workers"
        ),
        "preprocessing_num_workers": Applies(
            DECODES, "GPU views and the kNN monitor decode; CPU views decode in --dataloader_num_workers"
        ),
    }

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
            "help": "Where the decoded training split is kept. device: all of it in the "
            "training device's memory (fastest); host: a memory-mapped .npy file (in --decoded_cache_dir, "
            "else in the datasets cache), each step's rows gathered two steps ahead by a background thread "
            "into pinned memory and copied to the device, so host memory stays bounded whatever the split's "
            "size; the views are the same either way. auto: device when the split takes at most half of "
            "the device's free memory (on a CPU: of the host's available memory over this machine's "
            "processes), else host.",
        },
    )
    dataloader_num_workers: int = field(
        default=4,
        metadata={
            "help": "DataLoader workers of the CPU views (0: the main process).",
        },
    )
    stored_image_size: int | None = field(
        default=None,
        metadata={
            "help": "The side the training split is decoded to (default: --image_size). Larger "
            "(e.g. 160 for 96 px views), random resized crops take their pixels from more than the view's "
            "resolution and are downscaled with antialiasing, as torchvision does from the original images; "
            "the split then takes (stored / image_size)^2 times the memory or disk.",
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_augmentation()
        self.check_decoding()
        check_arguments(
            self,
            {
                "augment_on": (self.augment_on in AUGMENT_ON, "gpu, cpu or auto"),
                "keep_decoded_on": (
                    self.keep_decoded_on in ("auto", "device", "host"),
                    "device, host or auto",
                ),
                "dataloader_num_workers": (
                    self.dataloader_num_workers >= 0,
                    ">= 0 (0: decode in the main process)",
                ),
                "stored_image_size": (
                    self.stored_image_size is None
                    or self.stored_image_size >= self.augmentation().image_size,
                    f"at least the view's --image_size ({self.augmentation().image_size})",
                ),
            },
        )

    def check(self) -> None:
        """The checks that build the recipe: the preset with every flag (also run from Python, by start_run)."""
        self.augmentation()

    def augmentation(self) -> AugmentationConfig:
        """The recipe: the preset with every flag set here.

        Raises:
            UsageError: for an unknown preset, or values the recipe refuses together (e.g. a minimum crop
                above the maximum).
        """
        from ..augmentation import augmentation_preset

        with as_usage_error(DATA_FLAGS):
            return self.augmentation_from(augmentation_preset(self.preset))


DATA_FLAGS = tuple(f.name for f in fields(DataArguments))
