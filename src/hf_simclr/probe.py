"""Judging a frozen SimCLR encoder: linear probe, kNN, label fractions, random-init baseline.

The protocol of Chen et al. 2020 (Section 4, "linear evaluation"): the encoder f(.) is frozen, every
image is seen once through a deterministic view (resize, center crop, normalise), and a linear
classifier is trained on the representations h. Here the classifier is fit full-batch with L-BFGS on
standardised features (as the paper's CIFAR appendix does with an L2-regularised logistic regression),
its weight decay picked on a held-out slice of the training split. kNN accuracy (Wu et al. 2018,
InstDisc) needs no training and is cheap enough to monitor pretraining.

`run_linear_probe(args)` is the whole evaluation, as run by `scripts/linear_probe.py`; the pieces
(`extract_features`, `fit_linear_probe`, `knn_accuracies`, `label_fraction_indices`, ...) work on
tensors and are usable alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from torch import nn

from .data import ImageViewDataset, class_names, load_image_dataset
from .hub import (
    RESULTS_FILE,
    eval_augmentation_for,
    load_encoder,
    load_simclr_config,
    write_model_card,
)
from .modeling_simclr import SimCLRModel
from .transforms import AugmentationConfig, eval_batch_transform

DEFAULT_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
KNN_TEMPERATURE = 0.1  # InstDisc / SimCLR CIFAR monitors: votes weighted by exp(cos / 0.1)
FEATURE_CACHE_DIR = "feature_cache"
ACCURACY_DIGITS = 4  # accuracies are stored as fractions rounded to 0.01%: 1 image in 10,000


@dataclass
class LinearProbeArguments:
    """Arguments of `scripts/linear_probe.py` (and of [`run_linear_probe`])."""

    model_name_or_path: str = field(
        metadata={"help": "SimCLR model folder written by pretraining, or a Hub model id."}
    )
    dataset_name: str = field(
        metadata={
            "help": "Labeled dataset: a Hub id (uoft-cs/cifar10) or a local folder (parquet, imagefolder)."
        }
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration."})
    train_split: str = field(default="train", metadata={"help": "Split the probes are trained on."})
    eval_split: str = field(default="test", metadata={"help": "Split the probes are evaluated on."})
    image_column: str | None = field(default=None, metadata={"help": "Image column (found automatically)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (found automatically)."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Seeded random subset of the train split, for quick runs."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Seeded random subset of the eval split, for quick runs."}
    )
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Hub revision of the dataset to pin."}
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the model to pin."})
    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where results.json, the plots and the feature cache go. Defaults to the model folder "
            "(a local one), where a README.md model card is then written too."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of subsets, held-out split, label fractions, baseline."}
    )
    batch_size: int = field(default=256, metadata={"help": "Images per batch of feature extraction."})
    num_workers: int = field(default=4, metadata={"help": "DataLoader workers decoding images."})
    knn_k: list[int] = field(
        default_factory=lambda: [10, 200],
        metadata={"help": "Neighbour counts of the kNN classifier (200 is the InstDisc monitor's choice)."},
    )
    label_fractions: list[float] = field(
        default_factory=lambda: [0.01, 0.1],
        metadata={"help": "Fractions of the train labels (class-balanced) for extra linear probes."},
    )
    weight_decays: list[float] = field(
        default_factory=lambda: list(DEFAULT_WEIGHT_DECAYS),
        metadata={"help": "Grid of L2 penalties of the linear probe; the held-out split picks one."},
    )
    holdout_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of the train split held out to pick the weight decay."}
    )
    max_iter: int = field(default=500, metadata={"help": "L-BFGS iterations per linear probe fit."})
    plots: bool = field(default=False, metadata={"help": "Write t-SNE, neighbours, confusion, curve PNGs."})
    skip_baseline: bool = field(default=False, metadata={"help": "Skip the random-init encoder baseline."})
    device: str | None = field(
        default=None, metadata={"help": "torch device; cuda when available by default."}
    )

    def __post_init__(self) -> None:
        if any(k < 1 for k in self.knn_k):
            raise ValueError(f"--knn_k {self.knn_k}: every k must be >= 1.")
        for fraction in self.label_fractions:
            if not 0.0 < fraction <= 1.0:
                raise ValueError(
                    f"--label_fractions {fraction}: a fraction of the labels must lie in (0, 1]."
                )
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"--holdout_fraction {self.holdout_fraction} must lie in (0, 1), e.g. 0.1.")
        if not self.weight_decays or any(wd < 0 for wd in self.weight_decays):
            raise ValueError(f"--weight_decays {self.weight_decays}: give one or more values >= 0.")


# ----------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def extract_features(
    encoder: SimCLRModel,
    dataset,
    augmentation: AugmentationConfig,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Representations h of every image of a labeled dataset, by the frozen encoder.

    Images go through `EvalTransform(augmentation)` (resize, center crop, normalise; no augmentation);
    the encoder runs in eval mode (BatchNorm uses its running statistics), under bf16 autocast on CUDA.

    Args:
        encoder (`SimCLRModel`): the encoder f(.); moved to `device` and put in eval mode.
        dataset (`datasets.Dataset`): rows with `image` and `label` columns (see `load_image_dataset`).
        augmentation (`AugmentationConfig`): gives `image_size`, `mean` and `std`.
        batch_size (`int`, defaults to 256): images per forward pass.
        device (`torch.device`, *optional*): defaults to CUDA when available.
        num_workers (`int`, defaults to 0): DataLoader workers decoding images.

    Returns:
        `(h, y)`: float32 `(N, hidden_size)` and int64 `(N,)`, both on the CPU, in dataset order.
    """
    device = torch.device(device) if device is not None else default_device()
    encoder = encoder.to(device).eval()
    loader = torch.utils.data.DataLoader(
        ImageViewDataset(dataset, eval_batch_transform(augmentation)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    features, labels = [], []
    for batch in loader:
        pixel_values = batch["pixel_values"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            h = encoder(pixel_values).pooler_output
        features.append(h.float().cpu())
        labels.append(torch.as_tensor(batch["label"], dtype=torch.long))
    return torch.cat(features), torch.cat(labels)


def encoder_fingerprint(encoder: nn.Module) -> str:
    """SHA-256 of the encoder's parameters and buffers: two encoders with equal weights share it."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cached_features(
    cache_file: str | Path,
    encoder: SimCLRModel,
    dataset,
    augmentation: AugmentationConfig,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[`extract_features`], reused from `cache_file` (safetensors) when it was made by the same inputs.

    The file's metadata holds a key made of the encoder's weights ([`encoder_fingerprint`]), the
    dataset's `datasets` fingerprint and length, and the evaluation view; any change recomputes.

    Returns:
        `(h, y)` as [`extract_features`] returns them.
    """
    cache_file = Path(cache_file)
    key = json.dumps(
        {
            "encoder": encoder_fingerprint(encoder),
            "dataset": getattr(dataset, "_fingerprint", None),
            "rows": len(dataset),
            "image_size": augmentation.image_size,
            "mean": list(augmentation.mean),
            "std": list(augmentation.std),
        },
        sort_keys=True,
    )
    if cache_file.is_file():
        from safetensors import safe_open

        with safe_open(cache_file, framework="pt") as handle:
            if (handle.metadata() or {}).get("key") == key:
                tensors = load_file(cache_file)
                return tensors["h"], tensors["y"]
    h, y = extract_features(encoder, dataset, augmentation, batch_size, device, num_workers)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache_file.with_name(f".{cache_file.name}.tmp")
    save_file({"h": h.contiguous(), "y": y.contiguous()}, temporary, metadata={"key": key})
    temporary.replace(cache_file)
    return h, y


# ----------------------------------------------------------------------------------------------
# kNN
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def knn_accuracies(
    train_h: torch.Tensor,
    train_y: torch.Tensor,
    query_h: torch.Tensor,
    query_y: torch.Tensor,
    ks: Sequence[int] = (10, 200),
    temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None,
    chunk_size: int | None = None,
) -> dict[int, float]:
    """Weighted kNN top-1 accuracy for several k at once (one similarity pass).

    Each query's k nearest training points by cosine similarity (dot product of L2-normalised h)
    vote for their class with weight exp(similarity / temperature), the monitor of InstDisc
    (Wu et al. 2018) used by SimCLR's CIFAR code. Queries are processed in chunks so that the
    similarity block stays near 128 MB (50,000 x 10,000 fits anywhere).

    Args:
        train_h (`torch.Tensor` of shape `(N, D)`): training representations (any device, any float dtype).
        train_y (`torch.Tensor` of shape `(N,)`): their integer labels.
        query_h (`torch.Tensor` of shape `(Q, D)`): representations to classify; moved to `train_h`'s device.
        query_y (`torch.Tensor` of shape `(Q,)`): their labels.
        ks (`Sequence[int]`, defaults to `(10, 200)`): neighbour counts; a k above N uses all N.
        temperature (`float`, defaults to 0.1): temperature of the vote weights.
        num_classes (`int`, *optional*): defaults to the largest label + 1.
        chunk_size (`int`, *optional*): queries per block; defaults to about 2**25 / N.

    Returns:
        `dict` mapping each k to the fraction of queries whose vote matches their label.
    """
    if train_h.shape[0] == 0 or query_h.shape[0] == 0:
        raise ValueError(
            f"kNN needs training and query points; got {train_h.shape[0]} and {query_h.shape[0]}."
        )
    if any(k < 1 for k in ks):
        raise ValueError(f"ks={list(ks)}: every k must be >= 1.")
    device = train_h.device
    train = F.normalize(train_h.float(), dim=1)
    train_y = train_y.to(device)
    query_y = query_y.to(device)
    if num_classes is None:
        num_classes = int(max(train_y.max(), query_y.max())) + 1
    k_max = min(max(ks), train.shape[0])
    chunk_size = chunk_size or max(1, 2**25 // train.shape[0])
    correct = dict.fromkeys(ks, 0)
    for start in range(0, query_h.shape[0], chunk_size):
        query = F.normalize(query_h[start : start + chunk_size].to(device).float(), dim=1)
        similarity, index = (query @ train.T).topk(k_max, dim=1)  # (c, k_max), most similar first
        weights = (similarity / temperature).exp()
        neighbour_labels = train_y[index]
        target = query_y[start : start + chunk_size]
        for k in ks:
            used = min(k, k_max)
            votes = torch.zeros(query.shape[0], num_classes, device=device)
            votes.scatter_add_(1, neighbour_labels[:, :used], weights[:, :used])
            correct[k] += int((votes.argmax(dim=1) == target).sum())
    return {k: correct[k] / query_h.shape[0] for k in ks}


def knn_top1(
    train_h: torch.Tensor,
    train_y: torch.Tensor,
    query_h: torch.Tensor,
    query_y: torch.Tensor,
    k: int = 10,
    temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None,
) -> float:
    """Weighted kNN top-1 accuracy of `query_h` against `train_h`, for one k (see [`knn_accuracies`]).

    Args:
        train_h (`torch.Tensor` of shape `(N, D)`): training representations, on any device.
        train_y (`torch.Tensor` of shape `(N,)`): their labels.
        query_h (`torch.Tensor` of shape `(Q, D)`): representations to classify.
        query_y (`torch.Tensor` of shape `(Q,)`): their labels.
        k (`int`, defaults to 10): neighbours that vote.
        temperature (`float`, defaults to 0.1): votes weigh exp(cosine similarity / temperature).
        num_classes (`int`, *optional*): defaults to the largest label + 1.

    Returns:
        Accuracy in [0, 1].
    """
    return knn_accuracies(train_h, train_y, query_h, query_y, (k,), temperature, num_classes)[k]


# ----------------------------------------------------------------------------------------------
# Label fractions
# ----------------------------------------------------------------------------------------------


def label_fraction_indices(
    labels: torch.Tensor, fraction: float, seed: int = 0, names: Sequence[str] | None = None
) -> torch.Tensor:
    """Indices of a class-balanced, seeded subset holding `fraction` of the labels.

    Every class present keeps round(fraction * its count) examples, drawn at random, so the subset has
    the class proportions of the whole (the "1% / 10% of the labels" subsets of Chen et al. 2020,
    Section 6). With the same seed and labels, the subset of a smaller fraction is contained in that
    of a larger one.

    Args:
        labels (`torch.Tensor` of shape `(N,)`): integer labels.
        fraction (`float`): in (0, 1].
        seed (`int`, defaults to 0): seed of the draw.
        names (`Sequence[str]`, *optional*): class names, for the error message.

    Returns:
        `torch.LongTensor` of sorted indices into `labels`.

    Raises:
        ValueError: if `fraction` is outside (0, 1] or leaves a class without any example.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction {fraction} must lie in (0, 1].")
    labels = labels.cpu()
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in torch.unique(labels).tolist():
        members = (labels == label).nonzero().flatten()
        count = math.floor(fraction * len(members) + 0.5)
        if count == 0:
            name = names[label] if names is not None and 0 <= label < len(names) else str(label)
            raise ValueError(
                f"label fraction {fraction} leaves class {name!r} (label {label}, {len(members)} training "
                f"examples) with no example; use a fraction of at least {0.5 / len(members):.3g} or more "
                f"training samples (--max_train_samples)."
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


# ----------------------------------------------------------------------------------------------
# Linear probe
# ----------------------------------------------------------------------------------------------


@dataclass
class LinearProbe:
    """A linear classifier on standardised representations: logits = ((h - mean) / std) W^T + b.

    Attributes:
        mean (`torch.Tensor` of shape `(D,)`): mean of the training features.
        std (`torch.Tensor` of shape `(D,)`): their standard deviation (1 where a feature is constant).
        weight (`torch.Tensor` of shape `(C, D)`): class weights.
        bias (`torch.Tensor` of shape `(C,)`): class biases.
        weight_decay (`float`): the L2 penalty it was trained with.
        holdout_top1 (`dict`): held-out top-1 accuracy of each weight decay tried (empty if none was).
    """

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    weight_decay: float
    holdout_top1: dict[float, float] = field(default_factory=dict)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Class scores `(B, C)` for representations `(B, D)` (computed on the probe's device)."""
        x = (h.to(self.mean.device).float() - self.mean) / self.std
        return x @ self.weight.T + self.bias


def train_linear_classifier(
    h: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float, max_iter: int = 500
) -> LinearProbe:
    """Fit one standardised linear classifier, full batch with L-BFGS (on `h`'s device).

    Minimises mean cross-entropy + weight_decay / 2 * ||W||^2 (the bias is not penalised) from zero
    weights, which makes the fit deterministic.

    Args:
        h (`torch.Tensor` of shape `(N, D)`): training representations.
        y (`torch.Tensor` of shape `(N,)`): their labels in [0, num_classes).
        num_classes (`int`): C.
        weight_decay (`float`): L2 penalty on W.
        max_iter (`int`, defaults to 500): L-BFGS iterations.

    Returns:
        [`LinearProbe`].
    """
    h = h.float()
    y = y.to(h.device)
    mean = h.mean(dim=0)
    std = h.std(dim=0) if h.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # constant features (dead ReLUs) stay 0
    x = (h - mean) / std
    linear = nn.Linear(h.shape[1], num_classes).to(h.device)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(
        linear.parameters(), lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(linear(x), y) + 0.5 * weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return LinearProbe(mean, std, linear.weight.detach(), linear.bias.detach(), weight_decay)


def fit_linear_probe(
    h: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    holdout_fraction: float = 0.1,
    seed: int = 0,
    max_iter: int = 500,
) -> LinearProbe:
    """Pick the weight decay on a held-out slice of the training data, then fit on all of it.

    Args:
        h (`torch.Tensor` of shape `(N, D)`): training representations (the fit runs on their device).
        y (`torch.Tensor` of shape `(N,)`): their labels.
        num_classes (`int`): C.
        weight_decays (`Sequence[float]`): the grid; with a single value no held-out split is made.
        holdout_fraction (`float`, defaults to 0.1): seeded random share of the rows held out.
        seed (`int`, defaults to 0): seed of the held-out split.
        max_iter (`int`, defaults to 500): L-BFGS iterations per fit.

    Returns:
        [`LinearProbe`] trained on all rows with the best weight decay (ties go to the larger one);
        its `holdout_top1` lists every candidate's held-out accuracy.
    """
    holdout_top1: dict[float, float] = {}
    if len(weight_decays) > 1:
        count = h.shape[0]
        held = min(count - 1, max(1, round(holdout_fraction * count)))
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).to(h.device)
        held_out, kept = order[:held], order[held:]
        for weight_decay in weight_decays:
            probe = train_linear_classifier(h[kept], y[kept], num_classes, weight_decay, max_iter)
            holdout_top1[weight_decay] = top_k_accuracy(probe.logits(h[held_out]), y[held_out], 1)
        best = max(weight_decays, key=lambda weight_decay: (holdout_top1[weight_decay], weight_decay))
    else:
        best = weight_decays[0]
    probe = train_linear_classifier(h, y, num_classes, best, max_iter)
    probe.holdout_top1 = holdout_top1
    return probe


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
            "precision": _round(precision[label]),
            "recall": _round(recall[label]),
            "f1": _round(f1[label]),
            "support": int(support[label]),
        }
        for label in labels
    ]
    return per_class, confusion_matrix(truth, predicted, labels=labels).tolist()


def _round(value: float) -> float:
    return round(float(value), ACCURACY_DIGITS)


def evaluate_representations(
    train_h: torch.Tensor,
    train_y: torch.Tensor,
    eval_h: torch.Tensor,
    eval_y: torch.Tensor,
    num_classes: int,
    knn_k: Sequence[int] = (10, 200),
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    holdout_fraction: float = 0.1,
    seed: int = 0,
    max_iter: int = 500,
    device: torch.device | str | None = None,
) -> tuple[dict[str, Any], LinearProbe]:
    """Linear probe (top-1, top-5) and kNN accuracies of one set of representations.

    Args:
        train_h, train_y: `(N, D)` and `(N,)` training representations and labels.
        eval_h, eval_y: `(M, D)` and `(M,)` evaluation representations and labels.
        num_classes (`int`): C.
        knn_k, weight_decays, holdout_fraction, seed, max_iter: see [`LinearProbeArguments`].
        device (`torch.device`, *optional*): where the probes run; defaults to CUDA when available.

    Returns:
        `(metrics, probe)`: `metrics` has `linear_top1`, `linear_top5`, `weight_decay`,
        `holdout_top1` and `knn_top1` (`{"10": ..., "200": ...}`), accuracies as fractions in [0, 1].
    """
    device = torch.device(device) if device is not None else default_device()
    train_h, train_y = train_h.to(device), train_y.to(device)
    probe = fit_linear_probe(train_h, train_y, num_classes, weight_decays, holdout_fraction, seed, max_iter)
    logits = probe.logits(eval_h.to(device))
    knn = knn_accuracies(train_h, train_y, eval_h, eval_y, knn_k, num_classes=num_classes)
    metrics = {
        "linear_top1": _round(top_k_accuracy(logits, eval_y, 1)),
        "linear_top5": _round(top_k_accuracy(logits, eval_y, 5)),
        "weight_decay": probe.weight_decay,
        "holdout_top1": {f"{wd:g}": _round(acc) for wd, acc in probe.holdout_top1.items()},
        "knn_top1": {str(k): _round(acc) for k, acc in knn.items()},
    }
    return metrics, probe


# ----------------------------------------------------------------------------------------------
# The whole evaluation
# ----------------------------------------------------------------------------------------------


def resolve_output_dir(args: LinearProbeArguments) -> Path:
    """`--output_dir`, or the model folder itself when that is local.

    Raises:
        ValueError: for a Hub model id without `--output_dir`.
    """
    if args.output_dir is not None:
        return Path(args.output_dir)
    if Path(args.model_name_or_path).is_dir():
        return Path(args.model_name_or_path)
    raise ValueError(f"--model_name_or_path {args.model_name_or_path} is a Hub id: pass --output_dir.")


def run_linear_probe(args: LinearProbeArguments) -> dict[str, Any]:
    """Evaluate a SimCLR model folder: linear probe, kNN, label fractions, random-init baseline.

    Writes `results.json` (and, with `args.plots`, PNG files) into the output directory; when that
    directory is the model folder, also a `README.md` model card. Features are cached in
    `<output_dir>/feature_cache/` and reused while encoder, data and view are unchanged.

    Args:
        args ([`LinearProbeArguments`]): what to evaluate, on which data, and how.

    Returns:
        The results dict, as written to `results.json`: `linear_top1`, `linear_top5`, `knn_top1` and
        `knn` (`{"10": ..., "200": ...}`), `per_class`, `confusion_matrix`, `label_fraction`
        (`{"0.01": {"linear_top1": ...}, ...}`), `random_init_baseline` (None when skipped),
        `model_config`, `dataset`, `split_sizes`, `class_names`, `seed`, `model_name_or_path`, ...
        Accuracies are fractions in [0, 1] rounded to 4 digits.

    Raises:
        ValueError: for a folder that is not a SimCLR model, a dataset without labels, or a label
            fraction that leaves a class empty.
    """
    started = time.perf_counter()
    output_dir = resolve_output_dir(args)
    device = torch.device(args.device) if args.device else default_device()
    config = load_simclr_config(args.model_name_or_path, args.model_revision)
    encoder = load_encoder(args.model_name_or_path, args.model_revision)
    augmentation = eval_augmentation_for(args.model_name_or_path, config, args.model_revision)
    train_set, eval_set = (
        load_image_dataset(
            args.dataset_name,
            args.dataset_config_name,
            split=split,
            image_column=args.image_column,
            label_column=args.label_column,
            max_samples=max_samples,
            revision=args.dataset_revision,
            seed=args.seed,
            require_labels=True,
        )
        for split, max_samples in (
            (args.train_split, args.max_train_samples),
            (args.eval_split, args.max_eval_samples),
        )
    )

    def features(
        model: SimCLRModel, tag: str
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        extracted = [
            cached_features(
                output_dir / FEATURE_CACHE_DIR / f"features_{tag}_{split}.safetensors",
                model,
                dataset,
                augmentation,
                args.batch_size,
                device,
                args.num_workers,
            )
            for split, dataset in (("train", train_set), ("eval", eval_set))
        ]
        return (*extracted[0], *extracted[1])

    train_h, train_y, eval_h, eval_y = features(encoder, "model")
    names = class_names(train_set) or [
        str(label) for label in range(int(max(train_y.max(), eval_y.max())) + 1)
    ]
    num_classes = len(names)
    probe_options = dict(
        knn_k=args.knn_k,
        weight_decays=args.weight_decays,
        holdout_fraction=args.holdout_fraction,
        seed=args.seed,
        max_iter=args.max_iter,
        device=device,
    )
    metrics, probe = evaluate_representations(train_h, train_y, eval_h, eval_y, num_classes, **probe_options)
    eval_logits = probe.logits(eval_h.to(device))
    per_class, confusion = classification_report_dict(eval_logits, eval_y, names)

    label_fraction = {}
    for fraction in args.label_fractions:
        subset = label_fraction_indices(train_y, fraction, args.seed, names)
        subset_probe = fit_linear_probe(
            train_h[subset].to(device),
            train_y[subset].to(device),
            num_classes,
            args.weight_decays,
            args.holdout_fraction,
            args.seed,
            args.max_iter,
        )
        subset_logits = subset_probe.logits(eval_h.to(device))
        label_fraction[f"{fraction:g}"] = {
            "linear_top1": _round(top_k_accuracy(subset_logits, eval_y, 1)),
            "linear_top5": _round(top_k_accuracy(subset_logits, eval_y, 5)),
            "num_train_samples": len(subset),
            "weight_decay": subset_probe.weight_decay,
        }

    baseline = None
    if not args.skip_baseline:
        with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
            torch.manual_seed(args.seed)
            random_encoder = SimCLRModel(config).eval()
        baseline_h = features(random_encoder, "random_init")
        baseline_metrics, _ = evaluate_representations(*baseline_h, num_classes, **probe_options)
        baseline = {
            key: baseline_metrics[key] for key in ("linear_top1", "linear_top5", "knn_top1", "weight_decay")
        }

    results = {
        "model_name_or_path": str(args.model_name_or_path),
        "model_revision": args.model_revision,
        "linear_top1": metrics["linear_top1"],
        "linear_top5": metrics["linear_top5"],
        "knn_top1": metrics["knn_top1"],
        "knn": dict(metrics["knn_top1"]),
        "knn_temperature": KNN_TEMPERATURE,
        "linear_probe": {
            "weight_decay": metrics["weight_decay"],
            "holdout_top1": metrics["holdout_top1"],
            "weight_decays": list(args.weight_decays),
            "holdout_fraction": args.holdout_fraction,
            "optimizer": "L-BFGS, full batch, standardised features",
            "max_iter": args.max_iter,
        },
        "per_class": per_class,
        "confusion_matrix": confusion,
        "class_names": names,
        "label_fraction": label_fraction,
        "random_init_baseline": baseline,
        "model_config": config.to_dict(),
        "eval_view": {
            "image_size": augmentation.image_size,
            "mean": augmentation.mean,
            "std": augmentation.std,
        },
        "feature_dim": int(train_h.shape[1]),
        "dataset": {
            "name": args.dataset_name,
            "config": args.dataset_config_name,
            "revision": args.dataset_revision,
            "train_split": args.train_split,
            "eval_split": args.eval_split,
            "max_train_samples": args.max_train_samples,
            "max_eval_samples": args.max_eval_samples,
        },
        "split_sizes": {"train": len(train_set), "eval": len(eval_set)},
        "seed": args.seed,
        "arguments": asdict(args),
    }
    if args.plots:
        from .plots import write_probe_plots

        results["plots"] = write_probe_plots(
            output_dir,
            args.model_name_or_path,
            train_set,
            eval_set,
            train_h,
            eval_h,
            eval_y,
            names,
            confusion,
            seed=args.seed,
            model_revision=args.model_revision,
            train_y=train_y,
        )
    results["wall_time_seconds"] = round(time.perf_counter() - started, 1)
    write_results(results, output_dir)
    if (output_dir / "config.json").is_file() and output_dir.resolve() == Path(
        args.model_name_or_path
    ).resolve():
        write_model_card(output_dir, results=results)
    return results


def write_results(results: dict[str, Any], output_dir: str | Path) -> Path:
    """Write `results.json` into `output_dir` (via a temporary file, so never half-written)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / RESULTS_FILE
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(results, indent=2, default=str) + "\n")
    temporary.replace(path)
    return path


def format_results_table(results: dict[str, Any]) -> str:
    """A plain-text table of the headline numbers (percent), for the terminal."""
    baseline = results.get("random_init_baseline") or {}
    rows = [("Linear probe top-1", results["linear_top1"], baseline.get("linear_top1"))]
    rows.append(("Linear probe top-5", results["linear_top5"], baseline.get("linear_top5")))
    for k, value in results["knn_top1"].items():
        rows.append((f"kNN top-1 (k={k})", value, (baseline.get("knn_top1") or {}).get(k)))
    for fraction, values in results["label_fraction"].items():
        rows.append((f"Linear top-1, {100 * float(fraction):g}% labels", values["linear_top1"], None))
    lines = [f"{'':<32}{'model':>10}{'random init':>14}"]
    for name, value, base in rows:
        base_text = "-" if base is None else f"{100 * base:.2f}"
        lines.append(f"{name:<32}{100 * value:>10.2f}{base_text:>14}")
    sizes = results["split_sizes"]
    lines.append(f"({sizes['train']} train / {sizes['eval']} eval images, seed {results['seed']})")
    return "\n".join(lines)
