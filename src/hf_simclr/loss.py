"""NT-Xent, SimCLR's contrastive loss (Chen et al. 2020, Eq. 1), with negatives from every process.

With k processes of B images each, every process scores its own 2B views (the anchors) against the
2kB views of all processes (the candidates). The candidates are gathered with an autograd-aware
all-gather whose backward sums the gradients of every process, so that DDP's gradient averaging
gives exactly the gradient of one process holding the whole global batch of kB images.

This file imports only torch: it is copied next to saved models for `trust_remote_code` loading.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass
class NTXentOutput:
    """Result of [`nt_xent_loss`].

    Attributes:
        loss (`torch.Tensor`, scalar): mean NT-Xent over this process's 2B anchor views.
        logits (`torch.Tensor` of shape `(2B, 2kB)`): similarities / temperature, float32, the
            anchor's own column set to `-inf`.
        labels (`torch.LongTensor` of shape `(2B,)`): column of each anchor's positive.
    """

    loss: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather `tensor` (B, ...) from every process into (kB, ...), keeping the autograd graph.

    torch's functional all-gather sums the incoming gradients over processes in its backward
    (reduce-scatter), which is what contrastive negatives need; `accelerator.gather` has no backward at
    all. With one process this is the identity. (`torch.distributed.nn.functional.all_gather` does the same
    but is deprecated since torch 2.13.)
    """
    _, world_size = _world()
    if world_size == 1:
        return tensor
    from torch.distributed import _functional_collectives as collectives

    # torch >= 2.13: all_gather_single (autograd-aware); earlier: all_gather_tensor_autograd.
    gather = getattr(collectives, "all_gather_single", None) or collectives.all_gather_tensor_autograd
    return gather(tensor.contiguous(), 0, dist.group.WORLD)


def nt_xent_loss(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5) -> NTXentOutput:
    """Normalized temperature-scaled cross entropy over two views (Chen et al. 2020, Eq. 1).

    For each of the 2N views, its other view is the positive and the remaining 2N - 2 views are
    negatives, where N is the global batch (summed over processes). Similarities are cosine
    similarities computed in float32, also under autocast.

    Args:
        z_a (`torch.Tensor` of shape `(B, d)`): projections of the first view of this process's images.
        z_b (`torch.Tensor` of shape `(B, d)`): projections of the second view, same image order.
        temperature (`float`, defaults to 0.5): the temperature tau.

    Returns:
        [`NTXentOutput`] with the loss averaged over this process's 2B anchors.

    Raises:
        ValueError: if the shapes differ or the global batch has fewer than 2 images (no negatives).
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(
            f"z_a and z_b must both have shape (batch, dim); got {tuple(z_a.shape)} and {tuple(z_b.shape)}."
        )
    rank, world_size = _world()
    local_batch = z_a.shape[0]
    if local_batch * world_size < 2:
        raise ValueError(
            "NT-Xent needs at least 2 images per step (the other images are the negatives); "
            f"got a global batch of {local_batch * world_size}. Increase the batch size."
        )
    with torch.autocast(device_type=z_a.device.type, enabled=False):
        anchors = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)  # (2B, d)
        views_a = gather_with_grad(anchors[:local_batch])  # (kB, d)
        views_b = gather_with_grad(anchors[local_batch:])  # (kB, d)
        candidates = torch.cat([views_a, views_b])  # (2kB, d): all first views, then all second views
        logits = anchors @ candidates.T / temperature  # (2B, 2kB)

        global_batch = local_batch * world_size
        own = torch.arange(local_batch, device=z_a.device) + rank * local_batch
        self_columns = torch.cat([own, own + global_batch])
        positive_columns = torch.cat([own + global_batch, own])
        rows = torch.arange(2 * local_batch, device=z_a.device)
        logits = logits.index_put((rows, self_columns), torch.tensor(float("-inf"), device=z_a.device))
        loss = F.cross_entropy(logits, positive_columns)
    return NTXentOutput(loss=loss, logits=logits, labels=positive_columns)


def contrastive_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Fraction of anchor views whose positive ranks in the top `k` of the 2N - 1 candidates.

    Args:
        logits (`torch.Tensor` of shape `(2B, 2kB)`): as returned in [`NTXentOutput`].
        labels (`torch.LongTensor` of shape `(2B,)`): the positive's column for each row.
        k (`int`, defaults to 1): top-k.

    Returns:
        `torch.Tensor`: scalar in [0, 1], without gradient.
    """
    with torch.no_grad():
        k = min(k, logits.shape[1] - 1)
        top = logits.topk(k, dim=1).indices
        return (top == labels[:, None]).any(dim=1).float().mean()


class NTXentLoss(nn.Module):
    """Module form of [`nt_xent_loss`] returning the scalar loss.

    Args:
        temperature (`float`, defaults to 0.5): the temperature tau.
    """

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature={temperature} must be > 0.")
        self.temperature = temperature

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return nt_xent_loss(z_a, z_b, self.temperature).loss
