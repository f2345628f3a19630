"""The fine-tuning job: the output folder checked, the labeled fraction, the classifier, Trainer's loop,
the model folder and its results."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import (
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from .. import stop_signals
from ..arguments import UsageError, as_usage_error
from ..conditions import Settings, applied_settings
from ..data import ImageViewDataset, decode_labels, label_names
from ..evaluation.label_fractions import label_fraction_indices
from ..folder_format import (
    CONFIG_FILE,
    FINETUNE_RESULTS_FILE,
    IMAGE_PROCESSOR_FILE,
    TRAINER_STATE_FILE,
    TRAINING_ARGS_FILE,
    WEIGHTS_FILES,
)
from ..folder_hold import hold_folder, holds_folders
from ..model_folder import (
    CODE_FILES,
    eval_augmentation_for,
    load_classifier,
    load_simclr_config,
    save_model_folder,
)
from ..modeling_simclr import SimCLRForImageClassification
from ..paths import WRITE_DIR, check_path
from ..progress import on_a_terminal
from ..transforms import FinetuneTransform, ImageBatchTransform, eval_batch_transform
from .arguments import FinetuneArguments, TrainerArguments
from .callbacks import QuietCheckpointSaves, ReadableCheckpoints, StopOnSignal, stop_after_signal
from .results import results_record, top_k_metrics, write_finetune_results


def check_output_dir(
    output_dir: Path,
    overwrite: bool,
    resuming: bool,
    model_name_or_path: str,
    other_files: tuple[str, ...] = (),
    model_flag: str = "model_name_or_path",
) -> None:
    """Refuse an output folder that holds another fine-tuning run, unless it is to be replaced or resumed.

    With `overwrite`, the files of the earlier run (results, model files, Trainer's `checkpoint-*`) are
    removed first, so that nothing of it mixes with the new run; other files are left alone. `other_files`:
    the names of the job's other files (distillation's model card).

    Raises:
        ValueError: when the folder holds a run and neither `overwrite` nor `resuming` is set, and always
            when it is the folder of the model to fine-tune.
    """
    model_dir = Path(model_name_or_path)
    if model_dir.is_dir() and output_dir.resolve() == model_dir.resolve():
        raise UsageError(
            f"--output_dir {output_dir} is the model to fine-tune or distil (--{model_flag}); the trained model "
            f"is a new one: pass another --output_dir."
        )
    if not output_dir.is_dir() or resuming:
        return
    run_files = {
        FINETUNE_RESULTS_FILE,
        CONFIG_FILE,
        IMAGE_PROCESSOR_FILE,
        TRAINING_ARGS_FILE,
        *WEIGHTS_FILES,
        *CODE_FILES,
        *other_files,
    }
    previous = sorted(
        path for path in output_dir.iterdir() if path.name in run_files or path.name.startswith("checkpoint-")
    )
    if not previous:
        return
    if not overwrite:
        raise UsageError(
            f"--output_dir {output_dir} already holds a run ({', '.join(p.name for p in previous[:4])}); pass "
            f"--overwrite_output_dir to replace it, --resume_from_checkpoint to continue it, or another "
            f"--output_dir."
        )
    for path in previous:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def check_resume(output_dir: Path, resume: str | None) -> None:
    """Refuse `--resume_from_checkpoint` without a Trainer checkpoint to resume from, before any work.

    Raises:
        UsageError: for `latest` with no `checkpoint-*` in the output folder, or a path that is not one.
    """
    if resume is None:
        return
    if resume in ("latest", "True", "true"):
        if not list(output_dir.glob("checkpoint-*")):
            raise UsageError(
                f"--resume_from_checkpoint {resume}: {output_dir} holds no checkpoint-* folder to resume from; "
                f"run without --resume_from_checkpoint to start afresh (checkpoints come with --save_strategy)."
            )
        return
    if not (Path(resume) / TRAINER_STATE_FILE).is_file():
        raise UsageError(
            f"--resume_from_checkpoint {resume} is not a Trainer checkpoint (no trainer_state.json); pass one "
            f"of the checkpoint-* folders of --output_dir, or latest."
        )


def load_labeled_splits(args: FinetuneArguments) -> tuple[datasets.Dataset, datasets.Dataset, list[str], int]:
    """The labeled fraction of the training split, the evaluation split, the class names, and the size
    of the training split the fraction was drawn from."""
    train_set, eval_set = args.load_labeled_splits(args.subset_seed)
    labels = decode_labels(train_set)
    names = label_names(train_set, labels)
    subset = label_fraction_indices(labels, args.label_fraction, args.subset_seed, names)
    return train_set.select(subset.tolist()), eval_set, names, len(train_set)


def build_classifier(args: FinetuneArguments, names: list[str], seed: int) -> SimCLRForImageClassification:
    """The encoder of `args.model_name_or_path` and the first `--classifier_head_layers` layers of its
    projection head (or, with `--init random`, that architecture with seeded random weights), and a new linear
    classifier with `id2label` from the dataset's class names.

    Raises:
        UsageError: if the folder's weights lack encoder or kept head tensors (they would silently stay
            random), or its head has fewer layers than asked.
    """
    labels = {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}
    if args.classifier_head_layers is not None:
        labels["classifier_head_layers"] = args.classifier_head_layers
    set_seed(seed)  # the classifier's (and a random encoder's) initial weights follow --seed
    if args.init == "random":
        config = load_simclr_config(args.model_name_or_path, args.model_revision)
        for name, value in labels.items():
            setattr(config, name, value)
        with as_usage_error(("classifier_head_layers",)):
            config._validate()
        return SimCLRForImageClassification(config)
    return load_classifier(args.model_name_or_path, "model_name_or_path", args.model_revision, **labels)


@holds_folders  # the output folder is this run's until it returns or raises
def finetune(args: FinetuneArguments, training_args: TrainingArguments) -> dict[str, Any]:
    """Fine-tune on a label fraction and score on the evaluation split; write the model and its results.

    Writes into `training_args.output_dir`: the fine-tuned model (`AutoModelForImageClassification`
    folder with its image processor, the evaluation view) and `finetune_results.json`.

    Args:
        args ([`FinetuneArguments`]): model, data, label fraction, initialisation.
        training_args (`TrainingArguments`): how Trainer trains (epochs, batch, optimizer, precision...).

    Returns:
        The results as written to `finetune_results.json`: `top1`, `top3`, `top5` (fractions), `init`,
        `label_fraction`, `num_train_samples`, `per_class`, `dataset`, `split_sizes`, `device`,
        `wall_time_seconds`, the arguments.

    Raises:
        UsageError: before any training, for a model that is not SimCLR, an output folder that cannot be
            written or holds another run, a resume without a checkpoint, a dataset without labels, or a
            fraction that leaves a class empty.
    """
    started = time.perf_counter()
    check_applied(args, training_args)
    output_dir = Path(training_args.output_dir)
    check_path("output_dir", training_args.output_dir, WRITE_DIR)
    config = load_simclr_config(args.model_name_or_path, args.model_revision)
    resume = training_args.resume_from_checkpoint
    check_resume(output_dir, resume)
    check_output_dir(output_dir, args.overwrite_output_dir, resume is not None, args.model_name_or_path)
    if training_args.process_index == 0:  # one holder per run (torchrun ends the others if it is refused)
        hold_folder("output_dir", output_dir)
    suit_this_machine(training_args)
    eval_view = eval_augmentation_for(args.model_name_or_path, config, args.model_revision)
    # the training view: the evaluation's, with crops that may reach the whole image, and the flags set here
    train_view = args.augmentation_from(
        dataclasses.replace(eval_view, crop_scale=(eval_view.crop_scale[0], 1.0))
    )
    train_set, eval_set, names, train_split_size = load_labeled_splits(args)
    eval_dataset = ImageViewDataset(eval_set, eval_batch_transform(eval_view))
    model = build_classifier(args, names, training_args.seed)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=ImageViewDataset(
            train_set, ImageBatchTransform(FinetuneTransform(train_view), "image", "label")
        ),
        eval_dataset=eval_dataset,
        data_collator=default_data_collator,  # stacks pixel_values, turns `label` into `labels`
        compute_metrics=top_k_metrics,
    )
    trainer.add_callback(StopOnSignal())
    trainer.add_callback(ReadableCheckpoints())
    trainer.add_callback(QuietCheckpointSaves())
    with stop_signals.deferred():  # a scheduler's SIGTERM: the step finishes, Trainer saves a checkpoint
        trainer.train(resume_from_checkpoint=True if resume == "latest" else resume)
    stop_after_signal(trainer, output_dir)
    prediction = trainer.predict(eval_dataset, metric_key_prefix="eval")
    sizes = {"train": train_split_size, "labeled": len(train_set), "eval": len(eval_set)}
    results = results_record(args, training_args, prediction, names, sizes)
    results["classifier_head_layers"] = model.config.classifier_head_layers
    results["wall_time_seconds"] = round(time.perf_counter() - started, 1)
    if trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        run_record = {**results["arguments"], **results["training_arguments"]}
        save_model_folder(model, output_dir, eval_view, run_record)
        write_finetune_results(results, output_dir)
    return results


def check_applied(args: FinetuneArguments | Any, training_args: TrainingArguments) -> None:
    """The settings that apply only on this machine's device (`--fp16`: CUDA), checked before any work: a
    refusal, or a note for one given that does not apply ([`applied_settings`]); `args` is the job's own
    arguments (fine-tuning's or distillation's)."""
    _, notes = applied_settings(
        (type(args), TrainerArguments),
        Settings(args, training_args),
        {"cuda": torch.cuda.is_available()},
    )
    for note in notes:
        print(note)


def suit_this_machine(training_args: TrainingArguments) -> None:
    """Trainer's settings for where the job runs: no pinned memory without a GPU (it is for copies to one), and
    in a redirected log Trainer's progress as lines, not bars redrawn in place."""
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False
    if not on_a_terminal():
        training_args.disable_tqdm = True
