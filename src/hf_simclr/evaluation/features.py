"""The one feature path: a decoded split to h (and z = g(h)) by the frozen model, cached by its inputs.

A split is decoded once to uint8 ([`hf_simclr.data.decode_images`], the same decoding and `.npy` cache
pretraining uses), moved to the device in batches and encoded by the frozen model in eval mode (bf16
autocast on CUDA) by [`extract_features`], which gives h and, when the model folder has a projection head,
z = g(h) (the paper's Section 4.2 evaluates both). The probe, the snapshot curve and pretraining's kNN
monitor all encode through it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..augmentation import AugmentationConfig
from ..configuration_simclr import SimCLRConfig
from ..data import decode_images, decode_labels, host_split_cache_file
from ..devices import default_device
from ..folder_format import write_atomically
from ..identity import dataset_identity
from ..image_view import to_model_input
from ..model_folder import (
    check_loaded_weights,
    eval_augmentation_for,
    load_encoder,
    load_simclr_config,
    weights_errors,
)
from ..modeling_simclr import SimCLRForPreTraining, SimCLRModel
from ..progress import progress_bar


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
        UsageError: if the folder is not a SimCLR model, or its weights cannot be read or lack tensors.
    """
    config = load_simclr_config(model_name_or_path, revision)
    view = eval_augmentation_for(model_name_or_path, config, revision)
    if "SimCLRForPreTraining" not in (config.architectures or []):
        return FrozenModel(load_encoder(model_name_or_path, revision), None, view, config)
    with weights_errors(model_name_or_path, "model_name_or_path"):
        model, info = SimCLRForPreTraining.from_pretrained(
            model_name_or_path, revision=revision, output_loading_info=True
        )
    check_loaded_weights(
        info,
        model_name_or_path,
        "model_name_or_path",
        "Re-save the folder from SimCLRForPreTraining.",
        what="tensors of the pretraining model",
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
    for start in progress_bar(starts, desc=progress, unit="batch", shown=progress is not None):
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
    dataset: datasets.Dataset,
    image_size: int,
    cache_dir: str | Path | None = None,
    num_workers: int | None = None,
) -> LabeledSplit:
    """Decode a labeled split's images (cached in `cache_dir` when given, in memory or beyond the host's memory
    memory-mapped from the datasets cache without it: [`host_split_cache_file`]; `num_workers` decoding
    processes, `--preprocessing_num_workers`, by default every core) and labels.

    The evaluation runs in one process: it decodes alone (a second process decoding the same split into the
    same folder waits for this one's cache, and reads it)."""
    cache = host_split_cache_file(cache_dir, dataset, image_size, all_processes=False)
    images = decode_images(dataset, image_size, cache, num_workers=num_workers, all_processes=False)
    return LabeledSplit(dataset, images, decode_labels(dataset))


def read_cached_features(cache_file: Path, key: str) -> dict[str, torch.Tensor] | None:
    """The features cached in `cache_file` under `key`, or None: no file, other inputs, or a damaged file (a
    write cut short), which is then computed and written again."""
    if not cache_file.is_file():
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(cache_file, framework="pt") as handle:
            if (handle.metadata() or {}).get("key") == key:
                return load_file(cache_file)
    except (SafetensorError, OSError, ValueError):
        return None
    return None


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

    The file's metadata holds a key made of the weights ([`model_fingerprint`]), the dataset's content
    ([`dataset_identity`]: a copy staged elsewhere finds it) and length, and the evaluation view; any change
    recomputes.

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
            "dataset": dataset_identity(split.dataset),
            "rows": len(split.dataset),
            "image_size": model.view.image_size,
            "mean": list(model.view.mean),
            "std": list(model.view.std),
        },
        sort_keys=True,
    )
    cached = read_cached_features(cache_file, key)
    if cached is not None:
        return cached
    # channels_last: the layout the batches get on CUDA (pretraining's layout too; faster convolutions).
    encoder.to(device, memory_format=torch.channels_last if device.type == "cuda" else torch.preserve_format)
    if head is not None:
        head.to(device)
    features = extract_features(encoder, split.images, model.view, device, batch_size, head, progress)
    tensors = {name: value.cpu().contiguous() for name, value in features.items()}
    tensors["y"] = split.labels.contiguous()
    write_atomically(cache_file, lambda temporary: save_file(tensors, temporary, metadata={"key": key}))
    return tensors
