"""What fine-tuning takes (`scripts/finetune.py`): the model, the labels, the training view, the
initialisation ([`FinetuneArguments`]), and Trainer's own settings ([`TrainerArguments`]), those it would not
apply refused when parsed."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..arguments import UsageError, check_arguments
from ..augmentation_arguments import augmentation_arguments
from ..dataset_arguments import DatasetArguments
from ..paths import READ_DIR_OR_HUB, check_paths

INITS = ("simclr", "random")


# The training view's flags (paper, Appendix B.5: crops and flips only, no colour distortion); 0.2-0.5 as the
# smallest crop keeps more of a 32px image.
FinetuneViewArguments = augmentation_arguments(
    "FinetuneViewArguments",
    ("crop_scale_min", "horizontal_flip_p"),
    {"crop_scale_min": 0.08, "horizontal_flip_p": 0.5},
)


@dataclass
class FinetuneArguments(FinetuneViewArguments, DatasetArguments):
    """What to fine-tune on which labels (`scripts/finetune.py`; the dataset's are [`DatasetArguments`]);
    how to train is `TrainingArguments`."""

    model_name_or_path: str = field(
        metadata={"help": "SimCLR model folder or Hub id. With --init random only its architecture is used."}
    )
    init: str = field(
        default="simclr",
        metadata={
            "help": "simclr: start from the pretrained encoder; random: the same architecture, seeded "
            "by --seed (the baseline)."
        },
    )
    label_fraction: float = field(
        default=1.0,
        metadata={
            "help": "Class-balanced fraction of the training labels (paper: 0.01, 0.1); the same subset "
            "as the probe's --label_fractions for the same --subset_seed."
        },
    )
    subset_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the --max_train_samples / --max_eval_samples subsets and the label "
            "fraction; the probe's --seed (default 0) gives the same subsets."
        },
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the model."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Replace the fine-tuning run already in --output_dir (its results, model and "
            "checkpoint-* folders are removed first)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_augmentation()
        check_paths(self, {"model_name_or_path": READ_DIR_OR_HUB})
        check_arguments(
            self,
            {
                "init": (self.init in INITS, "simclr (the pretrained encoder) or random (the baseline)"),
                "label_fraction": (0 < self.label_fraction <= 1, "in (0, 1], e.g. 0.01 or 0.1 (paper)"),
                "subset_seed": (0 <= self.subset_seed < 2**32, "in [0, 2**32)"),
            },
        )


@dataclass
class TrainerArguments(TrainingArguments):
    """transformers' `TrainingArguments`, titled as a group of their own in `--help`, and the settings Trainer
    would take and not apply here, or fail on after the data is loaded, refused when parsed."""

    _argument_group_name = (
        "Trainer's settings (transformers' TrainingArguments: epochs, batch, optimizer, precision, checkpoints; "
        "--bf16 on a GPU)"
    )

    def check(self) -> None:
        """Refuse `--fp16` without a CUDA device (accelerate computes in fp32 while the record says fp16),
        `--report_to` a tracker that is not installed (Trainer stops at its start), and `--push_to_hub` (Trainer
        would push checkpoints, not the finished model folder this script writes).

        Raises:
            UsageError: naming the flag and the fix.
        """
        import torch
        from transformers.integrations import get_available_reporting_integrations

        if self.fp16 and (self.use_cpu or not torch.cuda.is_available()):
            raise UsageError(
                "--fp16 needs a CUDA GPU: on a CPU it is not applied, and the run would compute in fp32 while "
                "recording fp16. Leave it out, or give --bf16 --use_cpu (bfloat16 autocast on the CPU)."
            )
        installed = ("none", "all", *get_available_reporting_integrations())
        for tracker in (name for name in self.report_to if name not in installed):
            raise UsageError(
                f"--report_to {tracker}: {tracker} is not installed (or not a Trainer integration), so Trainer "
                f"would stop before training. pip install {tracker}, or pass --report_to none."
            )
        if self.push_to_hub:
            raise UsageError(
                "--push_to_hub: Trainer would push its checkpoints as they are saved, not the model folder "
                "finetune.py writes at the end (processor, code, results). Leave it out and upload --output_dir "
                "once the run ends: hf upload REPO_ID OUTPUT_DIR."
            )


# `--help` shows the script's own settings first under their own title, then Trainer's under another.
FinetuneArguments._argument_group_name = (
    "finetune.py's settings (the model, the data, the label fraction, the view, the initialisation)"
)
