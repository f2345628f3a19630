"""`scripts/finetune.py`'s command line: ours and Trainer's arguments read as one [`Command`], and what it
says at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..command import Command
from ..folder_format import (
    CONFIG_FILE,
    FINETUNE_RESULTS_FILE,
    IMAGE_PROCESSOR_FILE,
    MODEL_CARD_FILE,
    TRAINING_ARGS_FILE,
    WEIGHTS_FILES,
)
from .arguments import DistillArguments, FinetuneArguments, TrainerArguments


def describe_finetuning(results: dict[str, Any]) -> str:
    """What `scripts/finetune.py` prints at the end: what was fine-tuned, how it scores, and what it wrote where."""
    folder = Path(results["training_arguments"]["output_dir"])
    model_files = [
        name for name in (*WEIGHTS_FILES, CONFIG_FILE, IMAGE_PROCESSOR_FILE) if (folder / name).is_file()
    ]
    checkpoints = sorted(path.name for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if path.is_dir())
    return "\n".join(
        [
            f"Fine-tuned ({results['init']} init, {100 * results['label_fraction']:g}% of the labels, "
            f"{results['num_train_samples']} images): top-1 {100 * results['top1']:.2f}%, "
            f"top-3 {100 * results['top3']:.2f}%, top-5 {100 * results['top5']:.2f}% on "
            f"{results['split_sizes']['eval']} {results['dataset']['eval_split']} images.",
            f"Wrote into {folder}/:",
            f"  {FINETUNE_RESULTS_FILE} (the scores per class, the data and every argument)",
            f"  {', '.join(model_files)}, {TRAINING_ARGS_FILE} and the code files: the fine-tuned model "
            f"(AutoModelForImageClassification)",
            *(f"  {name}/ (Trainer's checkpoint: --resume_from_checkpoint)" for name in checkpoints),
        ]
    )


_DECODING = "fine-tuning decodes each image in Trainer's DataLoader workers: give --dataloader_num_workers N"
# The decoding settings of the other jobs, which people bring here.
FINETUNE_ELSEWHERE_FLAGS = (("preprocessing_num_workers", _DECODING), ("decoded_cache_dir", _DECODING))
# What to do after an interrupted fine-tuning or distillation.
RESUME_OR_AFRESH = (
    "run the same command with --resume_from_checkpoint latest to continue from Trainer's last checkpoint "
    "(--save_strategy), or with --overwrite_output_dir to start afresh."
)
# `scripts/finetune.py`: ours, then every option of transformers' `TrainingArguments`.
FINETUNE = Command(
    "finetune.py",
    (FinetuneArguments, TrainerArguments),
    "hf_simclr.finetuning.run:finetune",
    report="hf_simclr.finetuning.command:describe_finetuning",
    interrupted=RESUME_OR_AFRESH,
    required_by_checks=("dataset_name",),
    known_elsewhere=FINETUNE_ELSEWHERE_FLAGS,
)


def describe_distillation(results: dict[str, Any]) -> str:
    """What `scripts/distill.py` prints at the end: teacher, student, scores, files."""
    teacher, student = results["teacher"], results["student"]
    folder = Path(results["training_arguments"]["output_dir"])
    return "\n".join(
        [
            f"Distilled {teacher['path']} (top-1 {100 * teacher['top1']:.2f}%) into a {student['kind']} student "
            f"({student['backbone']}, {student['parameters']:,} parameters) on {results['num_unlabeled_samples']} "
            f"images (tau {results['distillation_temperature']:g}, teacher logits {results['teacher_logits']}): "
            f"top-1 {100 * results['top1']:.2f}%, top-3 {100 * results['top3']:.2f}% on "
            f"{results['split_sizes']['eval']} {results['dataset']['eval_split']} images.",
            f"Wrote into {folder}/: {FINETUNE_RESULTS_FILE}, {MODEL_CARD_FILE} (names the teacher) and the student "
            f"(AutoModelForImageClassification).",
        ]
    )


# `scripts/distill.py`: ours, then every option of transformers' `TrainingArguments`.
DISTILL = Command(
    "distill.py",
    (DistillArguments, TrainerArguments),
    "hf_simclr.finetuning.distill:distill",
    report="hf_simclr.finetuning.command:describe_distillation",
    interrupted=RESUME_OR_AFRESH,
    required_by_checks=("dataset_name",),
    known_elsewhere=FINETUNE_ELSEWHERE_FLAGS,
)
