"""Which images (and labels) a job reads: declared once, for every job.

[`DatasetArguments`] is the dataset part of pretraining's, the probe's (and the snapshot curve's) and
fine-tuning's arguments (each job's dataclass extends it), with its checks, its loading and its record:
the flags are the same in every script (`--dataset_name`, `--train_split`, ...), and the experiment runner
hands them from a variant's pretraining to its evaluation without a list kept by hand
([`EVALUATION_SHARES`]). [`DecodingArguments`] is how the jobs that decode their splits once do it. Like
`arguments.py`, this module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from .arguments import UsageError, check_arguments
from .conditions import Applies, Source, source_kind
from .paths import READ_DIR_OR_HUB, WRITE_DIR, check_paths

if TYPE_CHECKING:
    import datasets


@dataclass(kw_only=True)
class DatasetArguments:
    """The dataset a job reads: where it is, which splits and columns, and how much of it.

    The splits mean the same in every job: `train_split` is what the job learns from (pretraining's images,
    the probe's and fine-tuning's labeled training split), `eval_split` what it scores on (the kNN monitor's
    queries, the probe's and fine-tuning's test split).
    """

    # The job's `--dataset_name` when none is given (None: the job needs one).
    DEFAULT_DATASET: ClassVar[str | None] = None

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Hub id (uoft-cs/cifar10, jxie/stl10), or a local folder: parquet files, an imagefolder or "
            "a save_to_disk folder. Pretraining's default: uoft-cs/cifar10; the probe and fine-tuning need it."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration."})
    dataset_revision: str | None = field(default=None, metadata={"help": "Pin the dataset's Hub revision."})
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Load with datasets' streaming=True (a Hub dataset, or a local folder of parquet files, "
            "images or WebDataset .tar shards): each split used is read once, images undecoded, into a local "
            "map-style copy in the datasets cache (HF_DATASETS_CACHE, ~/.cache/huggingface/datasets/generator), "
            "which the next run with the same source reuses (Hub commit or local files changed: read again). "
            "The rows, their order, the seeded subsets and the decoded cache are those of a run without it."
        },
    )
    train_split: str = field(
        default="train",
        metadata={"help": "Split(s) the job learns from, e.g. train, or train+unlabeled for pretraining."},
    )
    eval_split: str | None = field(
        default="test",
        metadata={
            "help": "Labeled split the job scores on: the probe's and fine-tuning's test split, the queries "
            "of pretraining's kNN monitor (whose memory is the training images)."
        },
    )
    image_column: str | None = field(default=None, metadata={"help": "Image column (found automatically)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (found automatically)."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Seeded random subset of the train split (quick runs)."}
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={
            "help": "Seeded random subset of the eval split (quick runs); pretraining's kNN monitor "
            "queries as many as there are training images by default."
        },
    )

    # A configuration is `datasets`' way of building a dataset, which a save_to_disk folder has no use for; a
    # revision pins a Hub repository's commit.
    APPLIES: ClassVar[dict[str, Applies]] = {
        "dataset_config_name": Applies(
            Source("dataset_name", ("hub", "folder")), "a save_to_disk folder holds one configuration"
        ),
        "dataset_revision": Applies(Source("dataset_name", ("hub",)), "a local folder has no revisions"),
    }

    def __post_init__(self) -> None:
        if self.dataset_name is None:
            if self.DEFAULT_DATASET is None:
                raise UsageError(
                    "--dataset_name is required: the labeled dataset to evaluate on, a Hub id such as "
                    "uoft-cs/cifar10 or a local folder."
                )
            self.dataset_name = self.DEFAULT_DATASET
        check_paths(self, {"dataset_name": READ_DIR_OR_HUB})
        if self.streaming:
            check_streamable(self.dataset_name)
        subset = "a positive number of images (unset: the whole split)"
        check_arguments(
            self,
            {
                "max_train_samples": (self.max_train_samples is None or self.max_train_samples >= 1, subset),
                "max_eval_samples": (self.max_eval_samples is None or self.max_eval_samples >= 1, subset),
            },
        )

    def load_split(
        self, split_flag: str, max_samples: int | None = None, seed: int = 0, require_labels: bool = False
    ) -> datasets.Dataset:
        """The split named by `split_flag` (`train_split` or `eval_split`) in the package's one layout
        (`image`, optional `label`), a seeded subset of `max_samples` rows (default: the flag's own
        `--max_train_samples` / `--max_eval_samples`); a missing split is named by that flag."""
        from .data import load_image_dataset

        if max_samples is None:
            max_samples = self.max_train_samples if split_flag == "train_split" else self.max_eval_samples
        return load_image_dataset(
            self.dataset_name,
            self.dataset_config_name,
            getattr(self, split_flag),
            self.image_column,
            self.label_column,
            max_samples,
            self.dataset_revision,
            seed=seed,
            require_labels=require_labels,
            split_flag=split_flag,
            streaming=self.streaming,
        )

    def load_labeled_splits(self, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
        """The labeled train and eval splits (seeded subsets), both loaded, and so checked (present,
        labeled), before the caller decodes either."""
        return (
            self.load_split("train_split", seed=seed, require_labels=True),
            self.load_split("eval_split", seed=seed, require_labels=True),
        )

    def dataset_record(self) -> dict[str, Any]:
        """Which data the job read, as its results file records it (`results.json`, `finetune_results.json`)."""
        return {key: getattr(self, flag) for key, flag in RECORD.items()}


def check_streamable(dataset_name: str) -> None:
    """Raise for `--streaming` with a `save_to_disk` folder: it is read memory-mapped whatever its size,
    and streaming it would only copy its Arrow files once more."""
    if source_kind(dataset_name) == "saved":
        raise UsageError(
            f"--streaming with --dataset_name {dataset_name}: a save_to_disk folder is read memory-mapped "
            f"whatever its size, and streaming it would only copy it once more; drop --streaming."
        )


# A results file's `dataset` record: its keys, and the flag each one holds.


@dataclass(kw_only=True)
class DecodingArguments:
    """How a job that decodes its splits to uint8 once (pretraining's GPU views and kNN monitor, the probe, the
    snapshot curve) does it: where the decoded splits go, and with how many workers. Fine-tuning decodes each
    image in Trainer's DataLoader workers instead, and takes neither."""

    decoded_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder for the decoded uint8 splits (.npy, memory-mapped, named by the data's content and "
            "size; shared by runs, pretraining's kNN monitor and the probe: give the probe pretraining's to reuse "
            "its decoded training split). Unset: a split is decoded into memory, or, streamed (pretraining's "
            "--keep_decoded_on host) or beyond half of the host's available memory, into the datasets cache "
            "(HF_DATASETS_CACHE/hf_simclr_decoded)."
        },
    )
    preprocessing_num_workers: int | None = field(
        default=None,
        metadata={
            "help": "Worker processes per process decoding the splits to uint8 (the decoded cache). Default: "
            "the CPU cores this process may use, divided among the machine's processes (every core busy, "
            "none asked twice), at least 1000 images each (a worker's start costs about that much decoding)."
        },
    )

    def check_decoding(self) -> None:
        """Both values (called by the `__post_init__` of each job's arguments, which extend this class)."""
        check_paths(self, {"decoded_cache_dir": WRITE_DIR})
        check_arguments(
            self,
            {
                "preprocessing_num_workers": (
                    self.preprocessing_num_workers is None or self.preprocessing_num_workers >= 1,
                    "at least 1 (unset: every core of the machine, shared among its processes)",
                ),
            },
        )


# A results file's `dataset` record: its keys, and the flag each one holds.
RECORD = {
    "name": "dataset_name",
    "config": "dataset_config_name",
    "revision": "dataset_revision",
    "train_split": "train_split",
    "eval_split": "eval_split",
    "max_train_samples": "max_train_samples",
    "max_eval_samples": "max_eval_samples",
}
DATASET_FLAGS = tuple(f.name for f in fields(DatasetArguments))
# What a variant's evaluation takes from its pretraining unless the grid's `evaluation` sets it: the dataset,
# but not the training split (pretraining's may hold unlabeled images, e.g. STL-10's train+unlabeled), and the
# decoding's workers (the runner gives both the same decoded cache).
EVALUATION_SHARES = (*(name for name in DATASET_FLAGS if name != "train_split"), "preprocessing_num_workers")
