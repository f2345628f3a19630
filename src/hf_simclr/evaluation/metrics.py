"""Accuracy metrics of a classifier's scores, shared by the linear probe and fine-tuning."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

ACCURACY_DIGITS = 4  # accuracies are stored as fractions rounded to 0.01%: 1 image in 10,000


def round_accuracy(value: float) -> float:
    """An accuracy (a fraction) as stored in the results files: `ACCURACY_DIGITS` digits."""
    return round(float(value), ACCURACY_DIGITS)


def top_k_accuracy(logits: torch.Tensor, y: torch.Tensor, k: int = 1) -> float:
    """Fraction of rows whose label is among the k highest logits (k is capped at the class count).

    Args:
        logits (`torch.Tensor` of shape `(N, C)`): class scores.
        y (`torch.Tensor` of shape `(N,)`): labels.
    """
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == y.to(top.device)[:, None]).any(dim=1).float().mean().item()


def classification_report_dict(
    logits: torch.Tensor, y: torch.Tensor, names: Sequence[str]
) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Per-class precision, recall, F1 and support (scikit-learn), and the confusion matrix.

    Args:
        logits (`torch.Tensor` of shape `(N, C)`): class scores.
        y (`torch.Tensor` of shape `(N,)`): labels.
        names (`Sequence[str]`): the C class names.

    Returns:
        `(per_class, confusion)`: one dict per class (`label`, `name`, `precision`, `recall`, `f1`,
        `support`) and the `C x C` matrix, rows = true class, columns = predicted class.
    """
    predicted = logits.argmax(dim=1).cpu().numpy()
    truth = y.cpu().numpy()
    labels = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    per_class = [
        {
            "label": label,
            "name": names[label],
            "precision": round_accuracy(precision[label]),
            "recall": round_accuracy(recall[label]),
            "f1": round_accuracy(f1[label]),
            "support": int(support[label]),
        }
        for label in labels
    ]
    return per_class, confusion_matrix(truth, predicted, labels=labels).tolist()
