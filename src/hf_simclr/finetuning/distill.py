"""The distillation job (`scripts/distill.py`; SimCLR v2, Section 2.3): a fine-tuned teacher's soft labels on
the training split's images, labels unused, taught to a student (the teacher's architecture, a SimCLR folder or
a smaller timm backbone) through Trainer; the student is a classifier folder like fine-tuning's, with its results
on the evaluation split and a model card that names the teacher."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import TrainingArguments, default_data_collator, set_seed

from .. import stop_signals
from ..arguments import UsageError, as_usage_error
from ..configuration_simclr import SimCLRConfig
from ..data import ImageViewDataset, decode_labels, label_names
from ..evaluation.label_fractions import label_fraction_indices
from ..folder_format import FINETUNE_RESULTS_FILE, MODEL_CARD_FILE, TEACHER_LOGITS_DIR
from ..folder_hold import hold_folder, holds_folders
from ..model_folder import (
    eval_augmentation_for,
    is_classifier_folder,
    load_classifier,
    load_simclr_config,
    read_json,
    resolve_model_file,
    save_model_folder,
)
from ..modeling_simclr import SimCLRForImageClassification
from ..paths import WRITE_DIR, check_path, local_path
from ..reports.classifier_card import write_classifier_card
from ..transforms import FinetuneTransform, ImageBatchTransform, eval_batch_transform
from .arguments import SELF_STUDENT, DistillArguments
from .callbacks import QuietCheckpointSaves, ReadableCheckpoints, StopOnSignal, stop_after_signal
from .distillation import DistillationTrainer, RowViews, cached_teacher_logits
from .results import classifier_results, top_k_metrics, write_finetune_results
from .run import check_applied, check_output_dir, check_resume, suit_this_machine


@dataclasses.dataclass
class Teacher:
    """The fine-tuned classifier distilled, and what its run recorded (its labels, its data)."""

    model: SimCLRForImageClassification
    results: dict[str, Any]
    config: SimCLRConfig


def load_teacher(args: DistillArguments) -> Teacher:
    """The teacher folder's classifier (every tensor, its classifier included) and its `finetune_results.json`.

    Raises:
        UsageError: for a folder that is not a fine-tuned SimCLR classifier.
    """
    config = load_simclr_config(args.teacher, flag="teacher")
    results_file = resolve_model_file(args.teacher, FINETUNE_RESULTS_FILE)
    if not is_classifier_folder(config) or results_file is None:
        raise UsageError(
            f"--teacher {args.teacher} is not a fine-tuned classifier (its config.json names "
            f"{config.architectures}, and a fine-tuned folder holds {FINETUNE_RESULTS_FILE}): pass the "
            f"--output_dir of scripts/finetune.py."
        )
    model = load_classifier(args.teacher, "teacher", new_classifier=False)
    return Teacher(model.eval(), read_json(results_file), config)


def check_labeled_subset(args: DistillArguments, teacher: Teacher) -> None:
    """`--label_fraction` is the teacher's own labeled subset: its fraction, subset seed and data."""
    if args.label_fraction is None:
        return
    recorded = teacher.results
    dataset = recorded.get("dataset", {})
    wanted = {
        "label_fraction": recorded.get("label_fraction"),
        "subset_seed": dataset.get("subset_seed"),
        "max_train_samples": dataset.get("max_train_samples"),
    }
    for flag, value in wanted.items():
        if getattr(args, flag) != value:
            raise UsageError(
                f"--{flag} {getattr(args, flag)}: the teacher {args.teacher} was fine-tuned with --{flag} {value}; "
                f"the labeled loss uses the teacher's labeled subset, so pass --{flag} {value} (or leave "
                f"--label_fraction out for the soft labels alone)."
            )


def build_student(
    args: DistillArguments, teacher: Teacher, seed: int
) -> tuple[SimCLRForImageClassification, str]:
    """The student and what it is (`self`, `folder` or `timm`), with the teacher's labels.

    Raises:
        UsageError: for a student folder with another number of labels or another view than the teacher's,
            or a name that is neither a folder, `self`, nor a timm model.
    """
    labels = {"id2label": teacher.config.id2label, "label2id": teacher.config.label2id}
    set_seed(seed)  # a random student's weights (and a new classifier's) follow --seed
    if args.student == SELF_STUDENT:
        return SimCLRForImageClassification(SimCLRConfig.from_dict(teacher.config.to_dict())), "self"
    if local_path(args.student) is not None or "/" in args.student:
        config = load_simclr_config(args.student, flag="student")
        if is_classifier_folder(config) and config.num_labels != teacher.config.num_labels:
            raise UsageError(
                f"--student {args.student} is a classifier of {config.num_labels} labels, the teacher of "
                f"{teacher.config.num_labels}: pass a pretraining folder (a new classifier is made) or a classifier "
                f"of the teacher's labels."
            )
        view, teacher_view = eval_augmentation_for(args.student, config), eval_augmentation_for(args.teacher)
        if (view.image_size, view.mean, view.std) != (
            teacher_view.image_size,
            teacher_view.mean,
            teacher_view.std,
        ):
            raise UsageError(
                f"--student {args.student} sees {view.image_size} px images normalised by {view.mean}, the teacher "
                f"{teacher_view.image_size} px by {teacher_view.mean}: both must see the same images; pass a student "
                f"pretrained at the teacher's view, or a timm backbone name."
            )
        return load_classifier(args.student, "student", **labels), "folder"
    import timm

    if not timm.is_model(args.student):
        raise UsageError(
            f"--student {args.student}: not a folder, not {SELF_STUDENT!r} and not a timm model name; pass "
            f"{SELF_STUDENT}, a SimCLR folder, or a timm backbone (e.g. resnet18, resnet10t)."
        )
    settings = dict(
        backbone=args.student, image_size=teacher.config.image_size, projection_layers=0, **labels
    )
    with as_usage_error(("student",)):
        try:
            return SimCLRForImageClassification(
                SimCLRConfig(**settings, cifar_stem=teacher.config.cifar_stem)
            ), "timm"
        except ValueError:
            if not teacher.config.cifar_stem:
                raise
            print(f"[distill] {args.student} cannot take the CIFAR stem: the student keeps timm's own stem.")
            return SimCLRForImageClassification(SimCLRConfig(**settings, cifar_stem=False)), "timm"


def labeled_rows(args: DistillArguments, train_set: datasets.Dataset) -> dict[int, int]:
    """Row -> label of the teacher's labeled subset (empty without `--label_fraction`)."""
    if args.label_fraction is None:
        return {}
    labels = decode_labels(train_set)
    names = label_names(train_set, labels)
    subset = label_fraction_indices(labels, args.label_fraction, args.subset_seed, names)
    return {int(row): int(labels[row]) for row in subset}


def check_output(args: DistillArguments, training_args: TrainingArguments) -> Path:
    """The settings that apply here, the output folder (no other run in it, neither the teacher's nor the
    student's folder) held for this run, and Trainer's settings for this machine, before any work."""
    check_applied(args, training_args)
    output_dir = Path(training_args.output_dir)
    check_path("output_dir", training_args.output_dir, WRITE_DIR)
    resume = training_args.resume_from_checkpoint
    check_resume(output_dir, resume)
    for flag in ("teacher", "student"):
        overwrite, resuming = args.overwrite_output_dir, resume is not None
        check_output_dir(output_dir, overwrite, resuming, getattr(args, flag), (MODEL_CARD_FILE,), flag)
    if training_args.process_index == 0:
        hold_folder("output_dir", output_dir)
    suit_this_machine(training_args)
    training_args.remove_unused_columns = False  # each row's index reaches the loss (its cached logits)
    return output_dir


def load_splits(
    args: DistillArguments, teacher: Teacher
) -> tuple[datasets.Dataset, datasets.Dataset, list[str]]:
    """Every image of the training split (labels unused), the labeled evaluation split and its class names.

    Raises:
        UsageError: for an evaluation split of another number of classes than the teacher's.
    """
    train_set = args.load_split("train_split", seed=args.subset_seed)
    eval_set = args.load_split("eval_split", seed=args.subset_seed, require_labels=True)
    names = label_names(eval_set, decode_labels(eval_set))
    if len(names) != teacher.config.num_labels:
        raise UsageError(
            f"--eval_split {args.eval_split} has {len(names)} classes, the teacher {teacher.config.num_labels}: "
            f"distil on the dataset the teacher was fine-tuned on."
        )
    return train_set, eval_set, names


def teacher_targets(
    args: DistillArguments, training_args: TrainingArguments, teacher: Teacher, train_set: datasets.Dataset
) -> tuple[torch.Tensor | None, bool | None]:
    """With `--teacher_logits cached`, the teacher's logits on every row (computed once, or reused) and whether
    they were reused; on the fly, `(None, None)`."""
    if args.teacher_logits != "cached":
        return None, None
    cache_dir = Path(args.teacher_logits_cache_dir or Path(training_args.output_dir) / TEACHER_LOGITS_DIR)
    logits, cache_file, reused = cached_teacher_logits(
        cache_dir,
        teacher.model,
        train_set,
        args.train_split,
        eval_augmentation_for(args.teacher, teacher.config),
        training_args.device,
        training_args.per_device_eval_batch_size,
        training_args.dataloader_num_workers,
    )
    print(f"[distill] teacher logits {'reused from' if reused else 'computed into'} {cache_file}")
    return logits, reused


@holds_folders  # the output folder is this run's until it returns or raises
def distill(args: DistillArguments, training_args: TrainingArguments) -> dict[str, Any]:
    """Distil the teacher into the student on the training split's images; score it on the evaluation split.

    Writes into `training_args.output_dir`: the student (an `AutoModelForImageClassification` folder),
    `finetune_results.json` (`method: distill`, the teacher, the student, the scores) and a model card.

    Returns:
        The results as written.

    Raises:
        UsageError: before any training, for a teacher that is not a fine-tuned classifier, a student that does
            not fit it, a labeled subset that is not the teacher's, or an output folder that holds another run.
    """
    started = time.perf_counter()
    output_dir = check_output(args, training_args)
    teacher = load_teacher(args)
    check_labeled_subset(args, teacher)
    view = eval_augmentation_for(args.teacher, teacher.config)
    train_view = args.augmentation_from(dataclasses.replace(view, crop_scale=(view.crop_scale[0], 1.0)))
    train_set, eval_set, names = load_splits(args, teacher)
    student, kind = build_student(args, teacher, training_args.seed)
    labeled = labeled_rows(args, train_set)
    logits, reused = teacher_targets(args, training_args, teacher, train_set)
    eval_dataset = ImageViewDataset(eval_set, eval_batch_transform(view))
    trainer = DistillationTrainer(
        model=student,
        args=training_args,
        train_dataset=RowViews(
            train_set, ImageBatchTransform(FinetuneTransform(train_view), "image"), labeled
        ),
        eval_dataset=eval_dataset,
        data_collator=default_data_collator,
        compute_metrics=top_k_metrics,
        temperature=args.distillation_temperature,
        teacher_logits=logits,
        teacher=teacher.model if logits is None else None,
        labeled_loss_weight=args.labeled_loss_weight if labeled else 0.0,
    )
    for callback in (StopOnSignal(), ReadableCheckpoints(), QuietCheckpointSaves()):
        trainer.add_callback(callback)
    resume = training_args.resume_from_checkpoint
    with stop_signals.deferred():
        trainer.train(resume_from_checkpoint=True if resume == "latest" else resume)
    stop_after_signal(trainer, output_dir)
    prediction = trainer.predict(eval_dataset, metric_key_prefix="eval")
    sizes = {"train": len(train_set), "labeled": len(labeled), "eval": len(eval_set)}
    dataset = {**args.dataset_record(), "subset_seed": args.subset_seed}
    results = {
        "method": "distill",
        **distill_record(args, teacher, student, kind, len(train_set)),
        **classifier_results(training_args, prediction, names, sizes, dataset),
        "teacher_logits": args.teacher_logits,
        "teacher_logits_reused": reused,
        "arguments": dataclasses.asdict(args),
        "wall_time_seconds": round(time.perf_counter() - started, 1),
    }
    if trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        save_model_folder(model, output_dir, view, {**results["arguments"], **results["training_arguments"]})
        write_finetune_results(results, output_dir)
        write_classifier_card(output_dir, results)
    return results


def distill_record(
    args: DistillArguments, teacher: Teacher, student: SimCLRForImageClassification, kind: str, unlabeled: int
) -> dict[str, Any]:
    """What the results say of the chain: the teacher (and the labels it saw, which are the row's label
    budget), the student, the temperature and the labeled loss."""
    recorded = teacher.results
    return {
        "init": "distill",
        # the SimCLR model at the start of the chain (the table compares one), and the labels the chain saw
        "model_name_or_path": recorded.get("model_name_or_path"),
        "label_fraction": recorded.get("label_fraction"),
        "num_train_samples": recorded.get("num_train_samples"),
        "num_unlabeled_samples": unlabeled,
        "teacher": {
            "path": str(args.teacher),
            "backbone": teacher.config.backbone,
            "classifier_head_layers": teacher.config.classifier_head_layers,
            "top1": recorded.get("top1"),
            "init": recorded.get("init"),
        },
        "student": {
            "kind": kind,
            "name": args.student,
            "backbone": student.config.backbone,
            "parameters": sum(p.numel() for p in student.parameters()),
            "teacher_parameters": sum(p.numel() for p in teacher.model.parameters()),
        },
        "classifier_head_layers": student.config.classifier_head_layers,
        "distillation_temperature": args.distillation_temperature,
        "labeled_loss_weight": args.labeled_loss_weight if args.label_fraction is not None else None,
    }
