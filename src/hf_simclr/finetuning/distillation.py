"""What distillation computes (SimCLR v2, Chen et al. 2020b, Section 2.3): the loss on the teacher's soft labels,
the teacher's logits on the unlabeled images (cached once, keyed by the teacher and the data), and Trainer's
step that uses them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from transformers import Trainer, default_data_collator

from ..augmentation import AugmentationConfig
from ..data import ImageViewDataset
from ..evaluation.features import model_fingerprint, read_cached_features
from ..folder_format import teacher_logits_file, write_atomically
from ..identity import dataset_identity
from ..progress import progress_bar
from ..transforms import ImageBatchTransform, eval_batch_transform

# The label of a row outside the labeled subset: cross-entropy ignores it (PyTorch's default ignore_index).
UNLABELED = -100


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The distillation loss of SimCLR v2 (Section 2.3, Eq. 2), averaged over the batch:

        L = -sum_y P_T(y | x; tau) log P_S(y | x; tau),  P(y | x; tau) = softmax(logits / tau).

    The teacher is fixed: no gradient flows into `teacher_logits`. No tau^2 factor (Hinton et al. scale by it
    to keep the gradient's size across temperatures; the paper's loss has none). Its minimum over the student's
    logits is at P_S = P_T, where it equals the entropy of P_T.

    Args:
        student_logits (`torch.Tensor` of shape `(B, C)`): the student's logits.
        teacher_logits (`torch.Tensor` of shape `(B, C)`): the teacher's logits on the same images.
        temperature (`float`): tau.

    Returns:
        Scalar tensor.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} must "
            f"have the same shape (batch, classes)."
        )
    targets = F.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    log_probabilities = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return -(targets * log_probabilities).sum(dim=-1).mean()


class RowViews(ImageViewDataset):
    """The rows of a split through a batch transform, each item with its row (`row`) and its label (`labels`,
    [`UNLABELED`] outside the labeled subset): the distillation's training data.

    Args:
        dataset (`datasets.Dataset`): the training split (its labels are not read).
        transform (`ImageBatchTransform`): the training view, without labels.
        labeled (`dict[int, int]`): row -> label of the labeled subset (empty: soft labels only).
    """

    def __init__(
        self, dataset: datasets.Dataset, transform: ImageBatchTransform, labeled: dict[int, int]
    ) -> None:
        super().__init__(dataset, transform)
        self.labeled = labeled

    def __getitems__(self, indices: list[int]) -> list[dict]:
        items = super().__getitems__(indices)
        for index, item in zip(indices, items, strict=True):
            item["row"] = index
            item["labels"] = self.labeled.get(index, UNLABELED)
        return items


def teacher_logits_key(
    teacher: nn.Module, dataset: datasets.Dataset, split: str, view: AugmentationConfig
) -> str:
    """What cached logits depend on: the teacher's weights ([`model_fingerprint`]), the data by its content
    ([`dataset_identity`]: a copy staged elsewhere finds them), its split and rows, and the view."""
    return json.dumps(
        {
            "teacher": model_fingerprint(teacher),
            "dataset": dataset_identity(dataset),
            "split": split,
            "rows": len(dataset),
            "image_size": view.image_size,
            "mean": list(view.mean),
            "std": list(view.std),
        },
        sort_keys=True,
    )


@torch.no_grad()
def compute_teacher_logits(
    teacher: nn.Module,
    dataset: datasets.Dataset,
    view: AugmentationConfig,
    device: torch.device,
    batch_size: int,
    num_workers: int = 0,
) -> torch.Tensor:
    """The teacher's logits `(N, C)` (float32, CPU) on the evaluation view of every row, in row order."""
    loader = torch.utils.data.DataLoader(
        ImageViewDataset(dataset, eval_batch_transform(view, label_column=None)),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=default_data_collator,
    )
    mode = teacher.training
    teacher.eval().to(device)
    logits = [
        teacher(batch["pixel_values"].to(device)).logits.float().cpu()
        for batch in progress_bar(loader, desc="teacher logits", unit="batch")
    ]
    teacher.train(mode)
    return torch.cat(logits)


def cached_teacher_logits(
    cache_dir: str | Path,
    teacher: nn.Module,
    dataset: datasets.Dataset,
    split: str,
    view: AugmentationConfig,
    device: torch.device,
    batch_size: int,
    num_workers: int = 0,
) -> tuple[torch.Tensor, Path, bool]:
    """[`compute_teacher_logits`], reused from `cache_dir` when the same teacher scored the same data at the
    same view: the file is named by a digest of [`teacher_logits_key`] and holds the key in its metadata, which
    is compared on reading, so another teacher's, another dataset's or a damaged file is never read (it is
    computed and written anew, atomically).

    Returns:
        `(logits, the cache file, whether it was reused)`.
    """
    key = teacher_logits_key(teacher, dataset, split, view)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache_file = Path(cache_dir) / teacher_logits_file(digest, split)
    cached = read_cached_features(cache_file, key)
    if cached is not None and cached["logits"].shape[0] == len(dataset):
        return cached["logits"], cache_file, True
    logits = compute_teacher_logits(teacher, dataset, view, device, batch_size, num_workers)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"logits": logits.contiguous()}
    write_atomically(cache_file, lambda temporary: save_file(tensors, temporary, metadata={"key": key}))
    return logits, cache_file, False


class DistillationTrainer(Trainer):
    """Trainer whose training loss is [`distillation_loss`] against the teacher's logits (cached per row, or
    the frozen teacher's on the student's own augmented view), plus `labeled_loss_weight` x cross-entropy on
    the batch's labeled rows. Evaluation (no `row` in the batch) is the classifier's own cross-entropy.

    Args:
        temperature (`float`): tau.
        teacher_logits (`torch.Tensor` of shape `(N, C)`, *optional*): cached logits by row.
        teacher (`nn.Module`, *optional*): the frozen teacher, for logits on the fly.
        labeled_loss_weight (`float`): weight of the labeled rows' cross-entropy.
    """

    def __init__(
        self,
        *args: Any,
        temperature: float,
        teacher_logits: torch.Tensor | None = None,
        teacher: nn.Module | None = None,
        labeled_loss_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if (teacher_logits is None) == (teacher is None):
            raise ValueError("give either the cached teacher_logits or the teacher, not both or neither.")
        self.temperature = temperature
        self.teacher_logits = teacher_logits
        self.teacher = (
            teacher.eval().requires_grad_(False).to(self.args.device) if teacher is not None else None
        )
        self.labeled_loss_weight = labeled_loss_weight

    def compute_loss(
        self, model: nn.Module, inputs: dict[str, torch.Tensor], return_outputs: bool = False, **kwargs
    ):
        if "row" not in inputs:  # evaluation: the labeled test split
            return super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)
        rows, labels = inputs.pop("row"), inputs.pop("labels")
        outputs = model(pixel_values=inputs["pixel_values"])
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher(pixel_values=inputs["pixel_values"]).logits
        else:
            target = self.teacher_logits[rows.cpu()].to(outputs.logits.device)
        loss = distillation_loss(outputs.logits, target, self.temperature)
        labeled = labels != UNLABELED
        if self.labeled_loss_weight and labeled.any():
            loss = loss + self.labeled_loss_weight * F.cross_entropy(outputs.logits[labeled], labels[labeled])
        return (loss, outputs) if return_outputs else loss
