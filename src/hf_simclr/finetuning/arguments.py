"""What fine-tuning takes (`scripts/finetune.py`): the model, the labels, the training view, the
initialisation ([`FinetuneArguments`]), and Trainer's own settings ([`TrainerArguments`]), those it would not
apply refused when parsed."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from transformers import TrainingArguments

from ..arguments import UsageError, check_arguments, positive
from ..augmentation_arguments import augmentation_arguments
from ..conditions import Applies, Fact, SettingGiven, Source, all_of, setting_is
from ..dataset_arguments import DatasetArguments
from ..model_folder import check_classifier_head_layers, local_projection_layers
from ..paths import READ_DIR, READ_DIR_OR_HUB, WRITE_DIR, check_path, check_paths, local_path

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
    classifier_head_layers: int | None = field(
        default=None,
        metadata={
            "help": "Layers of the pretrained projection head kept before the linear classifier: 0 fine-tunes "
            "from h (SimCLR v1), 1 from the head's first layer (SimCLR v2, with a 3-layer head: "
            "configs/cifar10-resnet18-v2.yaml); at most the model's --projection_layers. Default: the model's "
            "config (0 unless pretrained with another)."
        },
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the model."})
    APPLIES: ClassVar[dict[str, Applies]] = {
        "model_revision": Applies(Source("model_name_or_path", ("hub",)), "a local folder has no revisions"),
        "overwrite_output_dir": Applies(
            SettingGiven("resume_from_checkpoint", given=False), "a resume continues the run in --output_dir"
        ),
    }
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
        check_classifier_head_layers(
            self.classifier_head_layers,
            local_projection_layers(self.model_name_or_path),
            self.model_name_or_path,
            "model_name_or_path",
        )
        check_arguments(
            self,
            {
                "init": (self.init in INITS, "simclr (the pretrained encoder) or random (the baseline)"),
                "label_fraction": (0 < self.label_fraction <= 1, "in (0, 1], e.g. 0.01 or 0.1 (paper)"),
                "subset_seed": (0 <= self.subset_seed < 2**32, "in [0, 2**32)"),
            },
        )


# What a distillation's student is: the teacher's architecture (self-distillation), a SimCLR folder or a timm name.
SELF_STUDENT = "self"
TEACHER_LOGITS = ("cached", "on_the_fly")


@dataclass
class DistillArguments(FinetuneViewArguments, DatasetArguments):
    """What to distil into which student on which images (`scripts/distill.py`; SimCLR v2, Section 2.3): the
    teacher's soft labels on the training split's images, labels unused, and optionally the teacher's labeled
    subset with a loss of its own; how to train is `TrainingArguments`."""

    teacher: str = field(
        metadata={"help": "The fine-tuned classifier to distil: an output folder of scripts/finetune.py."}
    )
    student: str = field(
        default=SELF_STUDENT,
        metadata={
            "help": "self: the teacher's architecture from random weights seeded by --seed (self-distillation, "
            "SimCLR v2's first step); a SimCLR folder (its encoder, and the head layers its config keeps, with a "
            "new classifier; the teacher's folder starts from the teacher itself); or a timm backbone name "
            "(resnet18, resnet10t, ...): a smaller student from random weights, with the teacher's stem and view."
        },
    )
    distillation_temperature: float = field(
        default=1.0,
        metadata={
            "help": "tau of P(y|x; tau) = softmax(logits / tau), for teacher and student: 1 takes the teacher's "
            "probabilities as they are; above 1 (2-4) softens them, so the student also learns how the teacher ranks "
            "the wrong classes (Hinton et al. 2015), which matters most for a smaller student. The loss has no "
            "tau^2 factor (the paper's has none): its gradient shrinks as 1/tau."
        },
    )
    teacher_logits: str = field(
        default="cached",
        metadata={
            "help": "cached: the teacher's logits on the evaluation view (the whole image) of each row, computed "
            "once and kept, keyed by the teacher's weights, the data and the view, for every epoch and every later "
            "student of that teacher; on_the_fly: the teacher scores the very crop the student sees, at the cost "
            "of a teacher forward pass per step."
        },
    )
    teacher_logits_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where cached teacher logits go and are looked up (default: <output_dir>/teacher_logits); a "
            "folder shared by the students of one teacher computes them once."
        },
    )
    label_fraction: float | None = field(
        default=None,
        metadata={
            "help": "Also train on the teacher's labeled subset (its fraction of the labels, which must be the "
            "teacher's own: the same class-balanced rows for the same --subset_seed), with cross-entropy weighted by "
            "--labeled_loss_weight. Default: the soft labels alone."
        },
    )
    labeled_loss_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of the labeled rows' cross-entropy beside the distillation loss."},
    )
    subset_seed: int = field(
        default=0,
        metadata={"help": "Seed of --max_train_samples / --max_eval_samples and of the labeled subset."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the distillation run already in --output_dir."},
    )
    APPLIES: ClassVar[dict[str, Applies]] = {
        "labeled_loss_weight": Applies(
            SettingGiven("label_fraction"), "without a labeled subset the soft labels are the only loss"
        ),
        "teacher_logits_cache_dir": Applies(
            setting_is("teacher_logits", "cached", among=TEACHER_LOGITS),
            "logits computed on the fly are not kept",
        ),
        "overwrite_output_dir": Applies(
            SettingGiven("resume_from_checkpoint", given=False), "a resume continues the run in --output_dir"
        ),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_augmentation()
        check_paths(self, {"teacher": READ_DIR_OR_HUB, "teacher_logits_cache_dir": WRITE_DIR})
        if (
            self.student != SELF_STUDENT and local_path(self.student) is not None
        ):  # else a timm name or Hub id
            check_path("student", self.student, READ_DIR)
        check_arguments(
            self,
            {
                "distillation_temperature": (
                    self.distillation_temperature is not None and positive(self.distillation_temperature),
                    "> 0, e.g. 1 (SimCLR v2) or 2-4 (softer labels)",
                ),
                "teacher_logits": (self.teacher_logits in TEACHER_LOGITS, " or ".join(TEACHER_LOGITS)),
                "label_fraction": (
                    self.label_fraction is None or 0 < self.label_fraction <= 1,
                    "in (0, 1], the teacher's own fraction (e.g. 0.01)",
                ),
                "labeled_loss_weight": (
                    math.isfinite(self.labeled_loss_weight) and self.labeled_loss_weight >= 0,
                    ">= 0, e.g. 1",
                ),
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
    APPLIES: ClassVar[dict[str, Applies]] = {
        "fp16": Applies(
            all_of(setting_is("use_cpu", False, among=(False, True)), Fact("cuda")),
            "on a CPU it is not applied, and the run would compute in fp32 while recording fp16; --bf16 --use_cpu "
            "is bfloat16 autocast on the CPU",
            refuse=True,
            off=False,
        ),
    }

    def check(self) -> None:
        """Refuse `--report_to` a tracker that is not installed (Trainer stops at its start), `--push_to_hub` and
        Trainer's other Hub settings (Trainer would push checkpoints, not the finished model folder this script
        writes), and `--do_train` / `--do_eval` / `--do_predict` but for what finetune.py does: train, then score
        on --eval_split (`--do_train --do_eval`, as Trainer's examples are run, is taken).

        Raises:
            UsageError: naming the flag and the fix.
        """
        from transformers.integrations import get_available_reporting_integrations

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
        defaults = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
        for name in (name for name in HUB_SETTINGS if getattr(self, name) != defaults[name]):
            raise UsageError(
                f"--{name} is a setting of Trainer's upload, which finetune.py does not make (it writes a model "
                f"folder, processor, code and results, at the end): leave it out and upload --output_dir once the "
                f"run ends: hf upload REPO_ID OUTPUT_DIR."
            )
        self.check_stages()

    def check_stages(self) -> None:
        """`--do_train` and `--do_eval` as finetune.py runs: both (or neither typed: both happen)."""
        if self.do_predict:
            raise UsageError(
                "--do_predict: finetune.py scores the fine-tuned model on --eval_split once trained, into "
                "finetune_results.json (top-k, per class, the confusion matrix): leave --do_predict out."
            )
        if self.do_train != self.do_eval:
            given, missing = ("do_train", "do_eval") if self.do_train else ("do_eval", "do_train")
            raise UsageError(
                f"--{given} without --{missing}: finetune.py always trains on the label fraction, then scores the "
                f"model on --eval_split; give both (as Trainer's examples are run) or neither."
            )


# Trainer's upload settings, which finetune.py refuses with --push_to_hub.
HUB_SETTINGS = (
    "hub_model_id",
    "hub_strategy",
    "hub_token",
    "hub_private_repo",
    "hub_always_push",
    "hub_revision",
)


# `--help` shows the script's own settings first under their own title, then Trainer's under another.
FinetuneArguments._argument_group_name = (
    "finetune.py's settings (the model, the data, the label fraction, the view, the initialisation)"
)
DistillArguments._argument_group_name = (
    "distill.py's settings (the teacher, the student, the data, the temperature, the teacher's logits)"
)
