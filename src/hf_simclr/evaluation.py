"""Judging a frozen SimCLR encoder: one feature path, kNN, linear probe, label fractions, baseline.

The protocol of Chen et al. 2020 (Section 4, "linear evaluation"): the encoder f(.) is frozen, every
image is seen once through a deterministic view (RGB, resize the shorter side, center crop, normalise:
[`hf_simclr.transforms.eval_view`], the view the saved image processor gives too), and a linear
classifier is trained on the representations h. Here the classifier is fit full-batch with L-BFGS on
standardised features (as the paper's CIFAR appendix does with an L2-regularised logistic regression),
its weight decay picked on a held-out slice of the training split. kNN accuracy (Wu et al. 2018,
InstDisc) needs no training and is cheap enough to monitor pretraining ([`KNNMonitor`]).

One feature path serves everything: a split is decoded once to uint8 ([`hf_simclr.data.decode_images`],
the same decoding and `.npy` cache pretraining uses), moved to the device in batches and encoded by the
frozen model in eval mode (bf16 autocast on CUDA) by [`extract_features`], which gives h and, when the
model folder has a projection head, z = g(h) (the paper's Section 4.2 evaluates both).

`run_linear_probe(args)` is the whole evaluation, as run by `scripts/linear_probe.py`; the pieces work on
tensors and are usable alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from torch import nn
from tqdm.auto import tqdm

from .configuration_simclr import SimCLRConfig
from .data import decode_images, decode_labels, decoded_cache_file, label_names, load_image_dataset
from .hub import (
    RESULTS_FILE,
    device_description,
    eval_augmentation_for,
    load_encoder,
    load_simclr_config,
    write_json_atomically,
    write_model_card,
    write_text_atomically,
)
from .modeling_simclr import SimCLRForPreTraining, SimCLRModel
from .transforms import AugmentationConfig, to_model_input

DEFAULT_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
KNN_TEMPERATURE = 0.1  # InstDisc / SimCLR CIFAR monitors: votes weighted by exp(cos / 0.1)
FEATURE_CACHE_DIR = "feature_cache"
ACCURACY_DIGITS = 4  # accuracies are stored as fractions rounded to 0.01%: 1 image in 10,000
FEATURE_CHOICES = {"h": ("h",), "z": ("z",), "both": ("h", "z")}


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
    features: str = field(
        default="both",
        metadata={
            "help": "Representations to probe: h (the encoder's output, the headline), z (the projection "
            "head's output; the paper's Table 3 shows it is worse), or both. z needs a pretraining "
            "folder (one with the head); with 'both' and no head, z is skipped and the reason recorded."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of subsets, held-out split, label fractions, baseline."}
    )
    batch_size: int = field(default=1024, metadata={"help": "Images per forward pass of feature extraction."})
    decoded_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of decoded uint8 splits (.npy, named by dataset fingerprint); pass pretraining's "
            "--decoded_cache_dir to reuse its decoded training split."
        },
    )
    knn_k: list[int] = field(
        default_factory=lambda: [10, 200],
        metadata={"help": "Neighbour counts of the kNN classifier (200 is the InstDisc monitor's choice)."},
    )
    label_fractions: list[float] = field(
        default_factory=lambda: [0.01, 0.1],
        metadata={
            "help": "Fractions of the train labels (class-balanced) for extra linear probes; a fraction "
            "that would leave a class without examples is skipped, with the reason in results.json."
        },
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
    write_card: bool = field(
        default=True,
        metadata={"help": "Write the README.md model card when the output folder is the model folder."},
    )
    device: str | None = field(
        default=None, metadata={"help": "torch device; cuda when available by default."}
    )

    def __post_init__(self) -> None:
        if self.features not in FEATURE_CHOICES:
            raise ValueError(f"--features {self.features} unknown; use h, z or both.")
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
        for name in ("batch_size", "max_iter"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} {getattr(self, name)} must be a positive integer.")


# ----------------------------------------------------------------------------------------------
# Features: one path from a dataset split to h and z
# ----------------------------------------------------------------------------------------------


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class FrozenModel:
    """What the evaluation encodes with: the encoder f(.), the projection head g(.) if any, and the view.

    Attributes:
        encoder (`SimCLRModel`): f(.); h = `encoder(x).pooler_output`.
        projection_head (`nn.Module`, *optional*): g(.); None when the folder holds the encoder only.
        view (`AugmentationConfig`): its `image_size`, `mean` and `std` define the evaluation view.
        config (`SimCLRConfig`): the model's configuration.
    """

    encoder: SimCLRModel
    projection_head: nn.Module | None
    view: AugmentationConfig
    config: SimCLRConfig


def load_frozen_model(model_name_or_path: str | Path, revision: str | None = None) -> FrozenModel:
    """Read a SimCLR folder (or Hub id) for evaluation: encoder, projection head when saved, view.

    A folder written by pretraining (`architectures: ["SimCLRForPreTraining"]`) holds the head, so z can
    be probed; a folder saved from [`SimCLRModel`] holds the encoder only.

    Raises:
        ValueError: if the folder is not a SimCLR model or its weights lack tensors of the model.
    """
    config = load_simclr_config(model_name_or_path, revision)
    view = eval_augmentation_for(model_name_or_path, config, revision)
    if "SimCLRForPreTraining" not in (config.architectures or []):
        return FrozenModel(load_encoder(model_name_or_path, revision), None, view, config)
    model, info = SimCLRForPreTraining.from_pretrained(
        model_name_or_path, revision=revision, output_loading_info=True
    )
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ValueError(
            f"{model_name_or_path}: the weights lack {len(missing)} tensors of the pretraining model (e.g. "
            f"{missing[:3]}), which would stay random. Re-save the folder from SimCLRForPreTraining."
        )
    model.eval()
    return FrozenModel(model.simclr, model.projection_head, view, config)


@torch.no_grad()
def extract_features(
    encoder: SimCLRModel,
    images: torch.Tensor,
    view: AugmentationConfig,
    device: torch.device | str | None = None,
    batch_size: int = 1024,
    projection_head: nn.Module | None = None,
    progress: str | None = None,
) -> dict[str, torch.Tensor]:
    """h (and z) of every image of a decoded split, by the frozen model: the package's one extractor.

    Batches of the uint8 split go to `device`, become model inputs there ([`to_model_input`]: scale,
    normalise by the view's statistics) and pass through the encoder in eval mode (BatchNorm uses its
    running statistics), under bf16 autocast on CUDA. The modules' train/eval modes are restored after.

    Args:
        encoder (`SimCLRModel`): f(.), already on `device`.
        images (`torch.Tensor` of dtype uint8 and shape `(N, 3, S, S)`): the decoded split (any device),
            e.g. from [`hf_simclr.data.decode_images`]; S must be the view's `image_size`.
        view (`AugmentationConfig`): gives `mean` and `std`.
        device (`torch.device`, *optional*): defaults to the encoder's device.
        batch_size (`int`, defaults to 1024): images per forward pass.
        projection_head (`nn.Module`, *optional*): g(.), on `device`; when given, z = g(h) is returned too.
        progress (`str`, *optional*): a label for a progress bar; None shows none.

    Returns:
        `dict` with `"h"`: float32 `(N, hidden_size)` and, with a head, `"z"`: float32 `(N, projection_dim)`,
        on `device`, in split order.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[2:]) != (view.image_size,) * 2:
        raise ValueError(
            f"images must be uint8 of shape (N, 3, {view.image_size}, {view.image_size}) (the decoded split at "
            f"the model's view size); got {images.dtype} {tuple(images.shape)}."
        )
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    modules = [module for module in (encoder, projection_head) if module is not None]
    modes = [module.training for module in modules]
    for module in modules:
        module.eval()
    mean = torch.tensor(view.mean, device=device)
    std = torch.tensor(view.std, device=device)
    features: dict[str, list[torch.Tensor]] = {"h": [], "z": []}
    starts = range(0, images.shape[0], batch_size)
    for start in tqdm(starts, desc=progress, disable=progress is None, leave=False):
        pixels = to_model_input(images[start : start + batch_size].to(device, non_blocking=True), mean, std)
        if device.type == "cuda":
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            h = encoder(pixels).pooler_output
            features["h"].append(h.float())
            if projection_head is not None:
                features["z"].append(projection_head(h).float())
    for module, mode in zip(modules, modes, strict=True):
        module.train(mode)
    return {name: torch.cat(values) for name, values in features.items() if values}


def model_fingerprint(*modules: nn.Module | None) -> str:
    """SHA-256 of the modules' parameters and buffers: models with equal weights share it."""
    digest = hashlib.sha256()
    for index, module in enumerate(modules):
        if module is None:
            continue
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(f"{index}.{name}".encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class LabeledSplit:
    """A labeled split, decoded once: the rows, their uint8 evaluation views and their labels.

    Attributes:
        dataset (`datasets.Dataset`): rows with `image` and `label` (see `load_image_dataset`).
        images (`torch.Tensor` of dtype uint8 and shape `(N, 3, S, S)`): [`decode_images`] of the rows.
        labels (`torch.Tensor` of shape `(N,)`): int64 labels.
    """

    dataset: datasets.Dataset
    images: torch.Tensor
    labels: torch.Tensor


def decode_labeled_split(
    dataset: datasets.Dataset, image_size: int, cache_dir: str | Path | None = None
) -> LabeledSplit:
    """Decode a labeled split's images (cached in `cache_dir` when given) and labels."""
    cache = decoded_cache_file(cache_dir, dataset, image_size)
    return LabeledSplit(dataset, decode_images(dataset, image_size, cache), decode_labels(dataset))


def cached_features(
    cache_file: str | Path,
    model: FrozenModel,
    split: LabeledSplit,
    device: torch.device | str | None = None,
    batch_size: int = 1024,
    projection_head: bool = True,
    encoder: SimCLRModel | None = None,
    progress: str | None = None,
) -> dict[str, torch.Tensor]:
    """[`extract_features`] of a split, reused from `cache_file` (safetensors) when made by the same inputs.

    The file's metadata holds a key made of the weights ([`model_fingerprint`]), the dataset's
    `datasets` fingerprint and length, and the evaluation view; any change recomputes.

    Args:
        cache_file (`str` or `Path`): the safetensors file.
        model ([`FrozenModel`]): encoder, head and view.
        split ([`LabeledSplit`]): the decoded split.
        device (`torch.device`, *optional*): where the model runs; defaults to CUDA when available.
        batch_size (`int`, defaults to 1024): images per forward pass.
        projection_head (`bool`, defaults to True): also compute z when the model has a head.
        encoder (`SimCLRModel`, *optional*): encode with this encoder instead of `model.encoder` (the
            random-init baseline), without a head.
        progress (`str`, *optional*): label of the progress bar.

    Returns:
        `dict` of float32 CPU tensors: `"h"`, `"z"` (when computed) and `"y"` (the labels).
    """
    device = torch.device(device) if device is not None else default_device()
    encoder = encoder if encoder is not None else model.encoder
    head = model.projection_head if projection_head and encoder is model.encoder else None
    cache_file = Path(cache_file)
    key = json.dumps(
        {
            "model": model_fingerprint(encoder, head),
            "dataset": getattr(split.dataset, "_fingerprint", None),
            "rows": len(split.dataset),
            "image_size": model.view.image_size,
            "mean": list(model.view.mean),
            "std": list(model.view.std),
        },
        sort_keys=True,
    )
    if cache_file.is_file():
        from safetensors import safe_open

        with safe_open(cache_file, framework="pt") as handle:
            if (handle.metadata() or {}).get("key") == key:
                return load_file(cache_file)
    # channels_last: the layout the batches get on CUDA (pretraining's layout too; faster convolutions).
    encoder.to(device, memory_format=torch.channels_last if device.type == "cuda" else torch.preserve_format)
    if head is not None:
        head.to(device)
    features = extract_features(encoder, split.images, model.view, device, batch_size, head, progress)
    tensors = {name: value.cpu().contiguous() for name, value in features.items()}
    tensors["y"] = split.labels.contiguous()
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache_file.with_name(f".{cache_file.name}.tmp")
    save_file(tensors, temporary, metadata={"key": key})
    temporary.replace(cache_file)
    return tensors


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


def label_fraction_subsets(
    labels: torch.Tensor, fractions: Sequence[float], seed: int = 0, names: Sequence[str] | None = None
) -> tuple[dict[float, torch.Tensor], dict[float, str]]:
    """[`label_fraction_indices`] for several fractions, skipping those that would empty a class.

    Small datasets should still get the rest of their evaluation: a fraction that leaves a class without
    an example is not an error here but a recorded skip.

    Returns:
        `(subsets, skipped)`: indices per usable fraction, and the reason per skipped fraction.
    """
    subsets, skipped = {}, {}
    for fraction in fractions:
        try:
            subsets[fraction] = label_fraction_indices(labels, fraction, seed, names)
        except ValueError as error:
            skipped[fraction] = str(error)
    return subsets, skipped


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


def probe_metrics(probe: LinearProbe, eval_h: torch.Tensor, eval_y: torch.Tensor) -> dict[str, Any]:
    """Top-1, top-3 and top-5 accuracy of a fitted probe on evaluation representations, and its decay."""
    logits = probe.logits(eval_h)
    metrics = {f"linear_top{k}": _round(top_k_accuracy(logits, eval_y, k)) for k in (1, 3, 5)}
    return {**metrics, "weight_decay": probe.weight_decay}


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
    """Linear probe (top-1, top-3, top-5) and kNN accuracies of one set of representations (h or z).

    Args:
        train_h, train_y: `(N, D)` and `(N,)` training representations and labels.
        eval_h, eval_y: `(M, D)` and `(M,)` evaluation representations and labels.
        num_classes (`int`): C.
        knn_k, weight_decays, holdout_fraction, seed, max_iter: see [`LinearProbeArguments`].
        device (`torch.device`, *optional*): where the probes run; defaults to CUDA when available.

    Returns:
        `(metrics, probe)`: `metrics` has `linear_top1`, `linear_top3`, `linear_top5`, `weight_decay`,
        `holdout_top1`, `knn_top1` (`{"10": ..., "200": ...}`) and `feature_dim`, accuracies as
        fractions in [0, 1].
    """
    device = torch.device(device) if device is not None else default_device()
    train_h, train_y = train_h.to(device), train_y.to(device)
    eval_h, eval_y = eval_h.to(device), eval_y.to(device)
    probe = fit_linear_probe(train_h, train_y, num_classes, weight_decays, holdout_fraction, seed, max_iter)
    knn = knn_accuracies(train_h, train_y, eval_h, eval_y, knn_k, num_classes=num_classes)
    metrics = {
        **probe_metrics(probe, eval_h, eval_y),
        "holdout_top1": {f"{wd:g}": _round(acc) for wd, acc in probe.holdout_top1.items()},
        "knn_top1": {str(k): _round(acc) for k, acc in knn.items()},
        "feature_dim": int(train_h.shape[1]),
    }
    return metrics, probe


# ----------------------------------------------------------------------------------------------
# The kNN monitor of pretraining
# ----------------------------------------------------------------------------------------------


class KNNMonitor:
    """kNN top-1 (cosine, k neighbours) on frozen h during pretraining, through [`extract_features`].

    The memory is the labeled part of the images being pretrained on (so a run on a 256-image subset
    keeps a 256-image memory), the queries a labeled evaluation split. Both are decoded uint8 splits;
    the memory may already live on the training device (the GPU pipeline's training images).

    Args:
        memory_images (`torch.Tensor` of dtype uint8, `(N, 3, S, S)`), memory_labels (`(N,)`, -1 = unlabeled).
        query_images (`torch.Tensor` of dtype uint8, `(Q, 3, S, S)`), query_labels (`(Q,)`).
        view (`AugmentationConfig`): the evaluation view (size, mean, std).
        k (`int`): neighbours that vote.
        batch_size (`int`, defaults to 1024): images per forward pass.
    """

    def __init__(
        self,
        memory_images: torch.Tensor,
        memory_labels: torch.Tensor,
        query_images: torch.Tensor,
        query_labels: torch.Tensor,
        view: AugmentationConfig,
        k: int,
        batch_size: int = 1024,
    ) -> None:
        labeled = memory_labels >= 0  # STL-10's unlabeled rows carry label -1
        if not labeled.any():
            raise ValueError(
                "the kNN monitor needs labeled training rows; turn it off with --knn_every_epochs 0."
            )
        if not labeled.all():
            rows = labeled.nonzero().flatten()
            memory_images = memory_images[rows.to(memory_images.device)]
        self.memory_images, self.memory_labels = memory_images, memory_labels[labeled]
        self.query_images, self.query_labels = query_images, query_labels
        self.view, self.k, self.batch_size = view, k, batch_size

    @property
    def sizes(self) -> tuple[int, int]:
        """(memory images, query images)."""
        return self.memory_images.shape[0], self.query_images.shape[0]

    def __call__(self, encoder: nn.Module, device: torch.device, progress: bool = True) -> float:
        """kNN top-1 of the queries against the memory, both encoded by `encoder` (on `device`) now."""
        memory = extract_features(encoder, self.memory_images, self.view, device, self.batch_size,
                                  progress="kNN monitor: memory" if progress else None)["h"]  # fmt: skip
        queries = extract_features(encoder, self.query_images, self.view, device, self.batch_size,
                                   progress="kNN monitor: queries" if progress else None)["h"]  # fmt: skip
        return knn_top1(
            memory, self.memory_labels.to(device), queries, self.query_labels.to(device), k=self.k
        )


# ----------------------------------------------------------------------------------------------
# The whole evaluation, in named steps
# ----------------------------------------------------------------------------------------------


class StepTimer:
    """Wall time of each named step of a run (device work included: CUDA is synchronised)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds[step] = round(self.seconds.get(step, 0.0) + time.perf_counter() - started, 2)


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


def features_to_probe(requested: str, model: FrozenModel) -> tuple[tuple[str, ...], str | None]:
    """The representations `--features` asks for that the model has, and why z is left out, if it is.

    Raises:
        ValueError: for `--features z` on a folder without a projection head.
    """
    wanted = FEATURE_CHOICES[requested]
    if "z" in wanted and model.projection_head is None:
        reason = (
            "the model folder holds the encoder only (no projection head), so z = g(h) cannot be computed; "
            "evaluate the folder written by pretraining (SimCLRForPreTraining) to probe z"
        )
        if wanted == ("z",):
            raise ValueError(f"--features z: {reason}.")
        return ("h",), reason
    return wanted, None


def load_labeled_splits(args: LinearProbeArguments, view: AugmentationConfig) -> dict[str, LabeledSplit]:
    """The train and eval splits of `args`, decoded to the view's size (through the decoded cache)."""
    splits = {}
    for name, split, max_samples in (
        ("train", args.train_split, args.max_train_samples),
        ("eval", args.eval_split, args.max_eval_samples),
    ):
        dataset = load_image_dataset(
            args.dataset_name, args.dataset_config_name, split, args.image_column, args.label_column,
            max_samples, args.dataset_revision, seed=args.seed, require_labels=True,
        )  # fmt: skip
        splits[name] = decode_labeled_split(dataset, view.image_size, args.decoded_cache_dir)
    return splits


def split_features(
    args: LinearProbeArguments,
    model: FrozenModel,
    splits: dict[str, LabeledSplit],
    cache_dir: Path,
    tag: str,
    device: torch.device,
    encoder: SimCLRModel | None = None,
    projection_head: bool = True,
) -> dict[str, dict[str, torch.Tensor]]:
    """Features (`h`, `z`, `y`) of the train and eval splits, cached as `features_<tag>_<split>.safetensors`.

    `encoder` replaces the model's encoder (the random-init baseline, h only); `projection_head=False`
    leaves z out."""
    return {
        name: cached_features(
            cache_dir / f"features_{tag}_{name}.safetensors",
            model,
            split,
            device,
            args.batch_size,
            projection_head=projection_head and encoder is None,
            encoder=encoder,
            progress=f"features ({tag}, {name})",
        )  # fmt: skip
        for name, split in splits.items()
    }


def probe_label_fractions(
    args: LinearProbeArguments,
    features: dict[str, dict[str, torch.Tensor]],
    num_classes: int,
    names: Sequence[str],
    device: torch.device,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Linear probes on h trained with class-balanced fractions of the train labels.

    Returns:
        `(label_fraction, skipped)`: metrics per usable fraction (`"0.01": {...}`), reason per skipped one.
    """
    train, evaluation = features["train"], features["eval"]
    subsets, skipped = label_fraction_subsets(train["y"], args.label_fractions, args.seed, names)
    results = {}
    for fraction, subset in subsets.items():
        probe = fit_linear_probe(
            train["h"][subset].to(device), train["y"][subset].to(device), num_classes,
            args.weight_decays, args.holdout_fraction, args.seed, args.max_iter,
        )  # fmt: skip
        metrics = probe_metrics(probe, evaluation["h"].to(device), evaluation["y"].to(device))
        results[f"{fraction:g}"] = {**metrics, "num_train_samples": len(subset)}
    return results, {f"{fraction:g}": reason for fraction, reason in skipped.items()}


def random_init_baseline(
    args: LinearProbeArguments,
    model: FrozenModel,
    splits: dict[str, LabeledSplit],
    cache_dir: Path,
    num_classes: int,
    device: torch.device,
) -> dict[str, Any]:
    """The same evaluation of h for an encoder of the same architecture with random weights (seeded)."""
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
        torch.manual_seed(args.seed)
        random_encoder = SimCLRModel(model.config).eval()
    features = split_features(args, model, splits, cache_dir, "random_init", device, encoder=random_encoder)
    metrics, _ = evaluate_representations(
        features["train"]["h"], features["train"]["y"], features["eval"]["h"], features["eval"]["y"],
        num_classes, **probe_options(args, device),
    )  # fmt: skip
    return {
        key: metrics[key] for key in ("linear_top1", "linear_top3", "linear_top5", "knn_top1", "weight_decay")
    }


def probe_options(args: LinearProbeArguments, device: torch.device) -> dict[str, Any]:
    return dict(knn_k=args.knn_k, weight_decays=args.weight_decays, holdout_fraction=args.holdout_fraction,
                seed=args.seed, max_iter=args.max_iter, device=device)  # fmt: skip


def run_linear_probe(args: LinearProbeArguments) -> dict[str, Any]:
    """Evaluate a SimCLR model folder: kNN and linear probe on h (and z), label fractions, baseline.

    Writes `results.json` (and, with `args.plots`, PNG files) into the output directory; when that
    directory is the model folder, also a `README.md` model card. Features are cached in
    `<output_dir>/feature_cache/` and reused while weights, data and view are unchanged.

    Args:
        args ([`LinearProbeArguments`]): what to evaluate, on which data, and how.

    Returns:
        The results dict, as written to `results.json`: the headline on h (`linear_top1`, `linear_top3`,
        `linear_top5`, `knn_top1` = `knn` `{"10": ..., "200": ...}`), `z` (the same metrics on z, when
        probed) or `z_skipped` (why not), `per_class`, `confusion_matrix`, `label_fraction`
        (`{"0.01": {"linear_top1": ...}, ...}`), `label_fraction_skipped` (reason per fraction),
        `random_init_baseline` (None when skipped), `timings_seconds` (per step), `model_config`,
        `dataset`, `split_sizes`, `class_names`, `seed`, ... Accuracies are fractions rounded to 4 digits.

    Raises:
        ValueError: for a folder that is not a SimCLR model, a dataset without labels, or `--features z`
            on a folder without a projection head; all before any image is encoded.
    """
    started = time.perf_counter()
    timer = StepTimer()
    output_dir = resolve_output_dir(args)
    cache_dir = output_dir / FEATURE_CACHE_DIR
    device = torch.device(args.device) if args.device else default_device()
    with timer("load_model"):
        model = load_frozen_model(args.model_name_or_path, args.model_revision)
        wanted, z_skipped = features_to_probe(args.features, model)
    with timer("decode"):
        splits = load_labeled_splits(args, model.view)
    with timer("features"):
        features = split_features(
            args, model, splits, cache_dir, "model", device, projection_head="z" in wanted
        )
    train, evaluation = features["train"], features["eval"]
    names = label_names(splits["train"].dataset, train["y"], evaluation["y"])
    num_classes = len(names)
    with timer("probe"):
        metrics, probes = {}, {}
        for name in wanted:
            metrics[name], probes[name] = evaluate_representations(
                train[name], train["y"], evaluation[name], evaluation["y"], num_classes,
                **probe_options(args, device),
            )  # fmt: skip
    results = results_record(args, model, splits, names, metrics, device)
    results["z_skipped"] = z_skipped
    if "h" in wanted:
        logits = probes["h"].logits(evaluation["h"].to(device))
        results["per_class"], results["confusion_matrix"] = classification_report_dict(
            logits, evaluation["y"], names
        )
        with timer("label_fractions"):
            results["label_fraction"], results["label_fraction_skipped"] = probe_label_fractions(
                args, features, num_classes, names, device
            )
        if not args.skip_baseline:
            with timer("random_init_baseline"):
                results["random_init_baseline"] = random_init_baseline(
                    args, model, splits, cache_dir, num_classes, device
                )
    if args.plots and "h" in wanted:
        from .plots import write_probe_plots

        with timer("plots"):
            results["plots"] = write_probe_plots(
                output_dir, args.model_name_or_path, splits["train"].dataset, splits["eval"].dataset,
                train["h"], evaluation["h"], evaluation["y"], names, results["confusion_matrix"], seed=args.seed,
                model_revision=args.model_revision, train_y=train["y"],
            )  # fmt: skip
    results["timings_seconds"] = timer.seconds
    results["wall_time_seconds"] = round(time.perf_counter() - started, 1)
    write_results(results, output_dir)
    is_model_folder = output_dir.resolve() == Path(args.model_name_or_path).resolve()
    if args.write_card and "h" in wanted and is_model_folder and (output_dir / "config.json").is_file():
        write_model_card(output_dir, results=results)
    return results


def results_record(
    args: LinearProbeArguments,
    model: FrozenModel,
    splits: dict[str, LabeledSplit],
    names: list[str],
    metrics: dict[str, dict[str, Any]],
    device: torch.device,
) -> dict[str, Any]:
    """The body of `results.json`: the headline metrics on h, those on z beside them, and what was
    evaluated, on what, how. The steps on h only (per class, label fractions, baseline) start empty."""
    headline = metrics.get("h", {})
    return {
        "model_name_or_path": str(args.model_name_or_path),
        "model_revision": args.model_revision,
        "features": list(metrics),
        "linear_top1": headline.get("linear_top1"),
        "linear_top3": headline.get("linear_top3"),
        "linear_top5": headline.get("linear_top5"),
        "knn_top1": headline.get("knn_top1"),
        "knn": dict(headline.get("knn_top1") or {}),
        "knn_temperature": KNN_TEMPERATURE,
        "linear_probe": {
            "weight_decay": headline.get("weight_decay"),
            "holdout_top1": headline.get("holdout_top1"),
            "weight_decays": list(args.weight_decays),
            "holdout_fraction": args.holdout_fraction,
            "optimizer": "L-BFGS, full batch, standardised features",
            "max_iter": args.max_iter,
        },
        "z": metrics.get("z"),
        "per_class": [],
        "confusion_matrix": None,
        "class_names": names,
        "label_fraction": {},
        "label_fraction_skipped": {},
        "random_init_baseline": None,
        "model_config": model.config.to_dict(),
        "eval_view": {"image_size": model.view.image_size, "mean": model.view.mean, "std": model.view.std},
        "feature_dim": headline.get("feature_dim"),
        "dataset": {
            "name": args.dataset_name,
            "config": args.dataset_config_name,
            "revision": args.dataset_revision,
            "train_split": args.train_split,
            "eval_split": args.eval_split,
            "max_train_samples": args.max_train_samples,
            "max_eval_samples": args.max_eval_samples,
        },
        "split_sizes": {"train": len(splits["train"].dataset), "eval": len(splits["eval"].dataset)},
        "seed": args.seed,
        "device": device_description(device=device),
        "arguments": asdict(args),
    }


# ----------------------------------------------------------------------------------------------
# Representations across training: the encoder snapshots of one run
# ----------------------------------------------------------------------------------------------

SNAPSHOT_CURVE_FILE = "snapshot_curve.json"
SNAPSHOT_TABLE_FILE = "snapshot_curve.md"
SNAPSHOT_PLOT_FILE = "snapshot_curve.png"
SNAPSHOT_TSNE_FILE = "snapshot_tsne.png"


def find_snapshots(folders: Sequence[str | Path]) -> list[tuple[int, Path]]:
    """(epoch, folder) of each snapshot, by epoch: a pretraining run folder stands for all of its
    `snapshots/epoch_N`, a snapshot folder for itself (its epoch read from `training_args.json`).

    Raises:
        ValueError: for a folder that is neither, or two snapshots of the same epoch.
    """
    found: list[tuple[int, Path]] = []
    for folder in map(Path, folders):
        snapshots = sorted((folder / "snapshots").glob("epoch_*")) if (folder / "snapshots").is_dir() else []
        if snapshots:
            found += [(int(path.name.split("_")[1]), path) for path in snapshots if path.name[6:].isdigit()]
            continue
        record = folder / "training_args.json"
        epoch = json.loads(record.read_text()).get("snapshot_epoch") if record.is_file() else None
        if epoch is None:
            raise ValueError(
                f"{folder} is neither a pretraining folder with snapshots/epoch_N (pretrain with "
                f"--snapshot_epochs 1,25,50,100) nor a snapshot folder."
            )
        found.append((int(epoch), folder))
    epochs = [epoch for epoch, _ in found]
    if len(set(epochs)) != len(epochs):
        raise ValueError(f"two snapshots of the same epoch among {[str(path) for _, path in found]}.")
    return sorted(found)


def run_snapshot_curve(
    args: LinearProbeArguments, snapshots: Sequence[str | Path], tsne_points: int = 2000
) -> dict[str, Any]:
    """Quality against pretraining epoch: kNN and the linear probe on h of each snapshot, t-SNE panels.

    Every snapshot is evaluated on the same decoded splits as [`run_linear_probe`] evaluates a model
    (label fractions, baseline and z are left out: snapshots hold the encoder only). Writes into the
    output folder (`--output_dir`, default the run folder `args.model_name_or_path`):
    `snapshot_curve.json`, `snapshot_curve.png` (kNN@k and linear top-1 per epoch), `snapshot_tsne.png`
    (one panel per snapshot, the same images, the same axes) and `snapshot_curve.md` (the curve and the
    last snapshot's per-class precision, recall and F1).

    Args:
        args ([`LinearProbeArguments`]): the data and probe settings (as for one model).
        snapshots (`Sequence[str | Path]`): run folders and/or snapshot folders (see [`find_snapshots`]).
        tsne_points (`int`, defaults to 2000): evaluation images per t-SNE panel.

    Returns:
        The dict written to `snapshot_curve.json`: `rows` (`epoch`, `linear_top1`, `linear_top3`,
        `linear_top5`, `knn_top1`, `snapshot`), `per_class` of the last, `class_names`, `dataset`, ...
    """
    from .plots import plot_quality_curve, plot_tsne_panels

    started = time.perf_counter()
    found = find_snapshots(snapshots)
    output_dir = resolve_output_dir(args)
    device = torch.device(args.device) if args.device else default_device()
    splits, rows, panels, last = None, [], [], None
    for epoch, folder in found:
        model = load_frozen_model(folder)
        if splits is None:
            splits = load_labeled_splits(args, model.view)
            names = label_names(splits["train"].dataset, *(split.labels for split in splits.values()))
        features = split_features(
            args, model, splits, output_dir / FEATURE_CACHE_DIR, f"epoch_{epoch}", device
        )
        train, evaluation = features["train"], features["eval"]
        metrics, probe = evaluate_representations(
            train["h"],
            train["y"],
            evaluation["h"],
            evaluation["y"],
            len(names),
            **probe_options(args, device),
        )
        keys = ("linear_top1", "linear_top3", "linear_top5", "knn_top1", "weight_decay")
        rows.append({"epoch": epoch, **{key: metrics[key] for key in keys}, "snapshot": str(folder)})
        panels.append((f"epoch {epoch}", evaluation["h"]))
        last = (probe, evaluation)
    per_class, confusion = classification_report_dict(
        last[0].logits(last[1]["h"].to(device)), last[1]["y"], names
    )
    curve = {
        "rows": rows,
        "per_class": per_class,
        "per_class_epoch": rows[-1]["epoch"],
        "confusion_matrix": confusion,
        "class_names": names,
        "dataset": {
            "name": args.dataset_name,
            "train_split": args.train_split,
            "eval_split": args.eval_split,
        },
        "split_sizes": {name: len(split.dataset) for name, split in splits.items()},
        "seed": args.seed,
        "device": device_description(device=device),
        "plots": {"curve": SNAPSHOT_PLOT_FILE, "tsne": SNAPSHOT_TSNE_FILE},
    }
    plot_quality_curve(rows, output_dir / SNAPSHOT_PLOT_FILE)
    plot_tsne_panels(panels, last[1]["y"], names, output_dir / SNAPSHOT_TSNE_FILE, tsne_points, args.seed)
    curve["wall_time_seconds"] = round(time.perf_counter() - started, 1)
    write_results(curve, output_dir, SNAPSHOT_CURVE_FILE)
    write_text_atomically(output_dir / SNAPSHOT_TABLE_FILE, format_snapshot_table(curve))
    return curve


def format_snapshot_table(curve: dict[str, Any]) -> str:
    """Markdown: accuracy per snapshot epoch, then the last snapshot's per-class precision/recall/F1 (%)."""
    ks = list(curve["rows"][0]["knn_top1"])
    lines = [
        "<!-- Written by hf_simclr.evaluation.run_snapshot_curve from snapshot_curve.json; do not edit. -->",
        "## Quality across pretraining (frozen h)",
        "",
        "| epoch | linear top-1 | linear top-3 | " + " | ".join(f"kNN top-1 (k={k})" for k in ks) + " |",
        "|---:|---:|---:|" + "---:|" * len(ks),
    ]
    for row in curve["rows"]:
        cells = [row["epoch"], *(f"{100 * row[key]:.2f}" for key in ("linear_top1", "linear_top3"))]
        cells += [f"{100 * row['knn_top1'][k]:.2f}" for k in ks]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    lines += [
        "",
        f"## Linear probe per class, epoch {curve['per_class_epoch']}",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in curve["per_class"]:
        lines.append(
            f"| {row['name']} | {100 * row['precision']:.2f} | {100 * row['recall']:.2f} | {100 * row['f1']:.2f} "
            f"| {row['support']} |"
        )
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], output_dir: str | Path, filename: str = RESULTS_FILE) -> Path:
    """Write `results.json` (or `filename`) into `output_dir` (via a temporary file, so never half-written)."""
    return write_json_atomically(Path(output_dir) / filename, results)


def format_results_table(results: dict[str, Any]) -> str:
    """A plain-text table of the numbers (percent) on h, z and the random-init baseline, for the terminal."""
    baseline = results.get("random_init_baseline") or {}
    z = results.get("z") or {}
    rows = [
        (f"Linear probe top-{k}", results.get(f"linear_top{k}"), z.get(f"linear_top{k}"),
         baseline.get(f"linear_top{k}"))
        for k in (1, 3, 5)
    ]  # fmt: skip
    for k in results.get("knn_top1") or z.get("knn_top1") or {}:
        rows.append((f"kNN top-1 (k={k})", (results.get("knn_top1") or {}).get(k),
                     (z.get("knn_top1") or {}).get(k), (baseline.get("knn_top1") or {}).get(k)))  # fmt: skip
    for fraction, values in results.get("label_fraction", {}).items():
        rows.append((f"Linear top-1, {100 * float(fraction):g}% labels", values["linear_top1"], None, None))

    def cell(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{100 * value:>{width}.2f}"

    lines = [f"{'':<32}{'h':>10}{'z':>10}{'random init':>14}"]
    lines += [f"{name:<32}{cell(h, 10)}{cell(zv, 10)}{cell(base, 14)}" for name, h, zv, base in rows]
    for fraction, reason in results.get("label_fraction_skipped", {}).items():
        lines.append(f"label fraction {fraction} skipped: {reason}")
    if results.get("z_skipped"):
        lines.append(f"z not probed: {results['z_skipped']}")
    sizes = results["split_sizes"]
    lines.append(f"({sizes['train']} train / {sizes['eval']} eval images, seed {results['seed']})")
    return "\n".join(lines)
