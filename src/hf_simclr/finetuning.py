"""Fine-tuning a SimCLR encoder on a fraction of the labels, with transformers' `Trainer`.

The semi-supervised protocol of Chen et al. 2020 (Section 6, Appendix B.5): the whole network, the
pretrained encoder f(.) and a new linear classifier on h ([`SimCLRForImageClassification`]), is trained
end to end on a class-balanced, seeded fraction of the labels (1%, 10%, 100%), the same subsets the
linear probe's label fractions use, with the training view of the fine-tuning literature (random resized
crop and flip, no colour distortion); it is scored on the evaluation split through the deterministic
evaluation view. `--init random` trains the same architecture from random weights: the baseline that
shows what pretraining brings.

`Trainer` is the loop (`TrainingArguments`: mixed precision, several GPUs, checkpoints, trackers); this
module supplies the data, the model and the metrics, and writes the model folder (loadable with
`AutoModelForImageClassification`) and `finetune_results.json`.

Metrics: top-k accuracy by the package's own `top_k_accuracy` (the probe's), per-class precision, recall
and F1 by scikit-learn. `evaluate.load("accuracy")` is not used: it fetches its script from the Hub at
run time, which fails offline (CI, the GPU machine).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import (
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainingArguments,
    default_data_collator,
    set_seed,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, PredictionOutput
from transformers.utils import logging as transformers_logging

from . import stop_signals
from .arguments import (
    READ_DIR_OR_HUB,
    WRITE_DIR,
    Command,
    UsageError,
    check_arguments,
    check_path,
    check_paths,
    hold_folder,
    holds_folders,
)
from .augmentation_arguments import augmentation_arguments
from .data import ImageViewDataset, decode_labels, label_names
from .dataset_arguments import DatasetArguments
from .devices import device_description
from .evaluation.label_fractions import label_fraction_indices
from .evaluation.metrics import classification_report_dict, round_accuracy, top_k_accuracy
from .folder_format import (
    CONFIG_FILE,
    FINETUNE_RESULTS_FILE,
    IMAGE_PROCESSOR_FILE,
    TRAINER_STATE_FILE,
    TRAINING_ARGS_FILE,
    WEIGHTS_FILES,
    give_plain_mode,
    write_json_atomically,
)
from .model_folder import (
    CODE_FILES,
    check_loaded_weights,
    eval_augmentation_for,
    load_simclr_config,
    save_model_folder,
    weights_errors,
)
from .modeling_simclr import SimCLRForImageClassification
from .transforms import FinetuneTransform, ImageBatchTransform, eval_batch_transform

INITS = ("simclr", "random")
TOP_K = (1, 3, 5)


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


def check_output_dir(output_dir: Path, overwrite: bool, resuming: bool, model_name_or_path: str) -> None:
    """Refuse an output folder that holds another fine-tuning run, unless it is to be replaced or resumed.

    With `overwrite`, the files of the earlier run (results, model files, Trainer's `checkpoint-*`) are
    removed first, so that nothing of it mixes with the new run; other files are left alone.

    Raises:
        ValueError: when the folder holds a run and neither `overwrite` nor `resuming` is set, and always
            when it is the folder of the model to fine-tune.
    """
    model_dir = Path(model_name_or_path)
    if model_dir.is_dir() and output_dir.resolve() == model_dir.resolve():
        raise UsageError(
            f"--output_dir {output_dir} is the model to fine-tune (--model_name_or_path); the fine-tuned model "
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
    """The encoder of `args.model_name_or_path` (or, with `--init random`, its architecture with seeded
    random weights) and a new linear classifier with `id2label` from the dataset's class names.

    Raises:
        ValueError: if the folder's weights lack encoder tensors (they would silently stay random).
    """
    labels = {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}
    set_seed(seed)  # the classifier's (and a random encoder's) initial weights follow --seed
    if args.init == "random":
        config = load_simclr_config(args.model_name_or_path, args.model_revision)
        config.id2label, config.label2id = labels["id2label"], labels["label2id"]
        return SimCLRForImageClassification(config)
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # a new classifier and a dropped projection head are expected
    try:
        with weights_errors(args.model_name_or_path, "model_name_or_path"):
            model, info = SimCLRForImageClassification.from_pretrained(
                args.model_name_or_path, revision=args.model_revision, output_loading_info=True, **labels
            )
    finally:
        transformers_logging.set_verbosity(verbosity)
    check_loaded_weights(
        info,
        args.model_name_or_path,
        "model_name_or_path",
        "Pass a folder written by pretraining, or --init random on purpose.",
        what="encoder tensors",
        allowed_missing=("classifier.",),  # the new classifier
        allowed_unexpected=("projection_head.",),  # the pretraining head, not part of the classifier
    )
    return model


def top_k_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """Top-1/3/5 accuracy of Trainer's predictions (fractions, 4 digits), for `compute_metrics`."""
    logits = torch.as_tensor(prediction.predictions)
    labels = torch.as_tensor(prediction.label_ids)
    return {f"top{k}": round_accuracy(top_k_accuracy(logits, labels, k)) for k in TOP_K}


def results_record(
    args: FinetuneArguments,
    training_args: TrainingArguments,
    prediction: PredictionOutput,
    names: list[str],
    sizes: dict[str, int],
) -> dict[str, Any]:
    """What `finetune_results.json` holds (without the wall time): scores, data, hardware, arguments."""
    logits, labels = torch.as_tensor(prediction.predictions), torch.as_tensor(prediction.label_ids)
    per_class, confusion = classification_report_dict(logits, labels, names)
    dataset = {**args.dataset_record(), "subset_seed": args.subset_seed}
    return {
        "init": args.init,
        "model_name_or_path": str(args.model_name_or_path),
        "model_revision": args.model_revision,
        "label_fraction": args.label_fraction,
        "num_train_samples": sizes["labeled"],
        **top_k_metrics(prediction),
        "eval_loss": prediction.metrics.get("eval_loss"),
        "per_class": per_class,
        "confusion_matrix": confusion,
        "class_names": names,
        "dataset": dataset,
        "split_sizes": sizes,
        "metrics": "top-k: hf_simclr top_k_accuracy; per class: scikit-learn",
        "seed": training_args.seed,
        "device": device_description(training_args.world_size if torch.cuda.is_available() else 1),
        "arguments": dataclasses.asdict(args),
        # never a credential (TrainingArguments redacts its own, but not those of a custom tracker)
        "training_arguments": {k: v for k, v in training_args.to_dict().items() if "token" not in k},
    }


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
    output_dir = Path(training_args.output_dir)
    check_path("output_dir", training_args.output_dir, WRITE_DIR)
    config = load_simclr_config(args.model_name_or_path, args.model_revision)
    resume = training_args.resume_from_checkpoint
    check_resume(output_dir, resume)
    check_output_dir(output_dir, args.overwrite_output_dir, resume is not None, args.model_name_or_path)
    if training_args.process_index == 0:  # one holder per run (torchrun ends the others if it is refused)
        hold_folder("output_dir", output_dir)
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinned memory is for copies to a GPU
    if not sys.stderr.isatty():  # a redirected log: Trainer's logs as lines, not bars redrawn in place
        training_args.disable_tqdm = True
    eval_view = eval_augmentation_for(args.model_name_or_path, config, args.model_revision)
    # the training view: the evaluation's, with crops that may reach the whole image, and the flags set here
    train_view = args.augmentation_from(
        dataclasses.replace(eval_view, crop_scale=(eval_view.crop_scale[0], 1.0))
    )
    train_set, eval_set, names, train_split_size = load_labeled_splits(args)
    eval_dataset = ImageViewDataset(eval_set, eval_batch_transform(eval_view))
    trainer = Trainer(
        model=build_classifier(args, names, training_args.seed),
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
    results["wall_time_seconds"] = round(time.perf_counter() - started, 1)
    if trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        run_record = {**results["arguments"], **results["training_arguments"]}
        save_model_folder(model, output_dir, eval_view, run_record)
        write_finetune_results(results, output_dir)
    return results


class StopOnSignal(TrainerCallback):
    """After a stop signal ([`stop_signals`]), Trainer saves a checkpoint at the end of the step and stops."""

    def on_step_end(
        self, args: TrainingArguments, state: Any, control: TrainerControl, **kwargs: Any
    ) -> None:
        if stop_signals.pending() is not None:
            control.should_save = True
            control.should_training_stop = True


class ReadableCheckpoints(TrainerCallback):
    """Each Trainer checkpoint gets the file modes of a plain `open()` (safetensors writes 0600)."""

    def on_save(self, args: TrainingArguments, state: Any, control: TrainerControl, **kwargs: Any) -> None:
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            give_plain_mode(checkpoint)


class QuietCheckpointSaves(TrainerCallback):
    """Trainer's checkpoints are saved without transformers' "Writing model shards" bar: for one small file it
    says nothing, and in a redirected log it is drawn with cursor movements under the training bar."""

    def on_train_begin(
        self, args: TrainingArguments, state: Any, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.bars = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()

    def on_train_end(
        self, args: TrainingArguments, state: Any, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.bars:
            transformers_logging.enable_progress_bar()


def stop_after_signal(trainer: Trainer, output_dir: Path) -> None:
    """Stop with the checkpoint Trainer saved, if a stop signal ended its training early.

    Raises:
        Stopped: naming the checkpoint and the resume command.
    """
    signal_number = stop_signals.pending()
    if signal_number is None or trainer.state.global_step >= trainer.state.max_steps:
        return
    checkpoint = output_dir / f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}"
    raise stop_signals.Stopped(
        signal_number,
        f"Trainer saved {checkpoint} after step {trainer.state.global_step} of {trainer.state.max_steps}. "
        f"Continue with the same command and --resume_from_checkpoint latest.",
        script="finetune.py",
    )


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


def write_finetune_results(results: dict[str, Any], output_dir: str | Path) -> Path:
    """Write `finetune_results.json` into `output_dir` (a temporary file renamed into place)."""
    return write_json_atomically(Path(output_dir) / FINETUNE_RESULTS_FILE, results)


# `--help` shows the script's own settings first under their own title, then Trainer's under another.
FinetuneArguments._argument_group_name = (
    "finetune.py's settings (the model, the data, the label fraction, the view, the initialisation)"
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


# `scripts/finetune.py`: ours, then every option of transformers' `TrainingArguments`.
FINETUNE = Command(
    "finetune.py",
    (FinetuneArguments, TrainerArguments),
    "hf_simclr.finetuning:finetune",
    report="hf_simclr.finetuning:describe_finetuning",
    interrupted="run the same command with --resume_from_checkpoint latest to continue from Trainer's last "
    "checkpoint (--save_strategy), or with --overwrite_output_dir to start afresh.",
    required_by_checks=("dataset_name",),
)
