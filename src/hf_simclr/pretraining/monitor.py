"""The kNN monitor of pretraining: kNN top-1 on frozen h, through the evaluation's one feature path."""

from __future__ import annotations

import datasets
import torch
from torch import nn

from ..augmentation import AugmentationConfig
from ..collective import Processes
from ..data import decode_images, decode_labels, host_split_cache_file
from ..decoded_cache import default_cache_dir
from ..evaluation.features import extract_features
from ..evaluation.knn import knn_top1
from .data_arguments import DataArguments


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
        memory = extract_features(
            encoder,
            self.memory_images,
            self.view,
            device,
            self.batch_size,
            progress="kNN monitor: memory" if progress else None,
        )["h"]
        queries = extract_features(
            encoder,
            self.query_images,
            self.view,
            device,
            self.batch_size,
            progress="kNN monitor: queries" if progress else None,
        )["h"]
        return knn_top1(
            memory, self.memory_labels.to(device), queries, self.query_labels.to(device), k=self.k
        )


def build_knn_monitor(
    processes: Processes,
    data_args: DataArguments,
    train_set: datasets.Dataset,
    queries: datasets.Dataset | None,
    train_images: torch.Tensor | None,
    augmentation: AugmentationConfig,
    k: int,
) -> KNNMonitor | None:
    """The kNN monitor of a run, on the main process: the pretraining rows as memory, the labeled `queries`
    (see [`hf_simclr.pretraining.setup.monitor_queries`]), or None without queries (and on the others).

    The memory follows the training subset (`--max_train_samples`), reusing its decoded images
    (`train_images`, already on the device with GPU views). The queries are by default at most as many as
    the memory has, so that a tiny run's monitor costs a fraction of an epoch instead of encoding a whole
    test split. What is decoded for it is decoded by every process together, each its share, through the
    decoded cache (`--decoded_cache_dir`, else the datasets cache): the others do not wait for the main
    process to decode alone (for ImageNet-1k, longer than NCCL's timeout).
    """
    if queries is None:
        return None
    size, workers = augmentation.image_size, data_args.preprocessing_num_workers
    together = processes.size > 1  # decode by shares in a file, or, alone, as the split's size says

    def decoded(split: datasets.Dataset) -> torch.Tensor:
        folder = data_args.decoded_cache_dir or (default_cache_dir() if together else None)
        cache = host_split_cache_file(folder, split, size)
        return decode_images(split, size, cache, num_workers=workers)

    memory = train_images if train_images is not None else decoded(train_set)
    query_images = decoded(queries)
    if not processes.is_main:
        return None
    return KNNMonitor(memory, decode_labels(train_set), query_images, decode_labels(queries), augmentation, k)
