"""What fine-tuning computes and writes at the end: top-k accuracy for Trainer, `finetune_results.json`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from transformers import (
    EvalPrediction,
    TrainingArguments,
)
from transformers.trainer_utils import PredictionOutput

from ..devices import device_description
from ..evaluation.metrics import classification_report_dict, round_accuracy, top_k_accuracy
from ..folder_format import (
    FINETUNE_RESULTS_FILE,
    write_json_atomically,
)
from .arguments import FinetuneArguments

TOP_K = (1, 3, 5)


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
    dataset = {**args.dataset_record(), "subset_seed": args.subset_seed}
    return {
        "method": "finetune",
        "init": args.init,
        "model_name_or_path": str(args.model_name_or_path),
        "model_revision": args.model_revision,
        "label_fraction": args.label_fraction,
        "num_train_samples": sizes["labeled"],
        **classifier_results(training_args, prediction, names, sizes, dataset),
        "arguments": dataclasses.asdict(args),
    }


def classifier_results(
    training_args: TrainingArguments,
    prediction: PredictionOutput,
    names: list[str],
    sizes: dict[str, int],
    dataset: dict[str, Any],
) -> dict[str, Any]:
    """A trained classifier's record, fine-tuned or distilled: its scores on the evaluation split (top-k, per
    class, the confusion matrix), the data, the hardware and Trainer's arguments."""
    logits, labels = torch.as_tensor(prediction.predictions), torch.as_tensor(prediction.label_ids)
    per_class, confusion = classification_report_dict(logits, labels, names)
    return {
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
        # never a credential (TrainingArguments redacts its own, but not those of a custom tracker)
        "training_arguments": {k: v for k, v in training_args.to_dict().items() if "token" not in k},
    }


def write_finetune_results(results: dict[str, Any], output_dir: str | Path) -> Path:
    """Write `finetune_results.json` into `output_dir` (a temporary file renamed into place)."""
    return write_json_atomically(Path(output_dir) / FINETUNE_RESULTS_FILE, results)
