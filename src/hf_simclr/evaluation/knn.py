"""Weighted kNN classification on frozen representations (Wu et al. 2018, InstDisc): no training needed."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

KNN_TEMPERATURE = 0.1  # InstDisc / SimCLR CIFAR monitors: votes weighted by exp(cos / 0.1)


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
