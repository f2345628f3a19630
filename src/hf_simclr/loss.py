"""NT-Xent, SimCLR's contrastive loss (Chen et al. 2020, Eq. 1), with negatives from every process.

With k processes of B images each, every process scores its own 2B views (the anchors) against the
2kB views of all processes (the candidates). The candidates are gathered with an autograd-aware
all-gather whose backward sums the gradients of every process, so that DDP's gradient averaging
gives exactly the gradient of one process holding the whole global batch of kB images.

The objectives beside NT-Xent take the same z and give the same [`NTXentOutput`] (`OBJECTIVES`), for small
batches that learn like large ones:

- [`dcl_loss`] (Yeh et al. 2022, "Decoupled Contrastive Learning", Eq. 6): the positive leaves the
  denominator; with `sigma` (DCLW) each image's positive term is weighted by a von Mises-Fisher kernel.
- [`sogclr_loss`] (Yuan et al. 2022, "Provable Stochastic Optimization for Global Contrastive Learning"):
  DCL's denominator replaced by a moving average `u` per training image over the whole dataset
  ([`SogCLRState`]).

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
    with torch.autocast(device_type=z_a.device.type, enabled=False):
        pairs = _scored_pairs(z_a, z_b, temperature, "NT-Xent")
        loss = F.cross_entropy(pairs.logits, pairs.positives)
    return NTXentOutput(loss=loss, logits=pairs.logits, labels=pairs.positives)


@dataclass
class _ScoredPairs:
    """Every anchor of this process scored against every candidate of every process (float32)."""

    anchors: torch.Tensor  # (2B, d), normalised
    logits: torch.Tensor  # (2B, 2kB): similarities / temperature, the anchor's own column -inf
    positives: torch.Tensor  # (2B,): the positive's column
    global_batch: int  # N = kB

    @property
    def rows(self) -> torch.Tensor:
        return torch.arange(self.logits.shape[0], device=self.logits.device)

    def negatives(self) -> torch.Tensor:
        """`logits` with the positive's column -inf too: the 2N - 2 negatives of each anchor."""
        minus_infinity = torch.tensor(float("-inf"), device=self.logits.device)
        return self.logits.index_put((self.rows, self.positives), minus_infinity)


def _scored_pairs(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float, name: str) -> _ScoredPairs:
    """The anchors, their logits against the gathered candidates and their positives (call with autocast off)."""
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(
            f"z_a and z_b must both have shape (batch, dim); got {tuple(z_a.shape)} and {tuple(z_b.shape)}."
        )
    rank, world_size = _world()
    local_batch = z_a.shape[0]
    if local_batch * world_size < 2:
        raise ValueError(
            f"{name} needs at least 2 images per step (the other images are the negatives); "
            f"got a global batch of {local_batch * world_size}. Increase the batch size."
        )
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
    return _ScoredPairs(anchors, logits, positive_columns, global_batch)


def dcl_loss(
    z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5, sigma: float | None = None
) -> NTXentOutput:
    """Decoupled contrastive loss (Yeh et al. 2022, Eq. 6); DCLW with `sigma`.

    NT-Xent without the positive in the denominator (the negative-positive coupling): for each of the 2N
    views, `-s_ip / tau + log sum_{k != i, p} exp(s_ik / tau)`, averaged over this process's 2B anchors, the
    negatives gathered from every process as in [`nt_xent_loss`]. With `sigma` (DCLW) the positive term of
    image i is weighted by `w_i = 2 - N softmax_i(s_ii' / sigma)`, the softmax over the N images of the global
    batch, without gradient (lightly's `DCLWLoss` takes the softmax over each process's own images; with one
    process the two are the same).

    Args:
        z_a (`torch.Tensor` of shape `(B, d)`): projections of the first views.
        z_b (`torch.Tensor` of shape `(B, d)`): projections of the second views, same image order.
        temperature (`float`, defaults to 0.5): tau.
        sigma (`float`, *optional*): DCLW's kernel width (the paper: 0.5); None: DCL.

    Returns:
        [`NTXentOutput`] (its `logits` keep the positive's column, for [`contrastive_accuracy`]).
    """
    with torch.autocast(device_type=z_a.device.type, enabled=False):
        pairs = _scored_pairs(z_a, z_b, temperature, "DCL")
        positive = pairs.logits[pairs.rows, pairs.positives]  # (2B,)
        if sigma is not None:
            positive = positive * von_mises_fisher_weights(pairs, sigma).repeat(2)
        loss = (torch.logsumexp(pairs.negatives(), dim=1) - positive).mean()
    return NTXentOutput(loss=loss, logits=pairs.logits, labels=pairs.positives)


def von_mises_fisher_weights(pairs: _ScoredPairs, sigma: float) -> torch.Tensor:
    """DCLW's weight of each of this process's B images, `2 - N softmax(s_ii' / sigma)` over the global batch."""
    local_batch = pairs.anchors.shape[0] // 2
    with torch.no_grad():
        similarity = (pairs.anchors[:local_batch] * pairs.anchors[local_batch:]).sum(dim=1) / sigma  # (B,)
        every = gather_with_grad(similarity)  # (N,), no gradient needed: the same gather
        rank, _ = _world()
        weights = 2 - pairs.global_batch * torch.softmax(every, dim=0)
        return weights[rank * local_batch : (rank + 1) * local_batch]


class SogCLRState(nn.Module):
    """SogCLR's moving average `u` of each training image's denominator (one float32 per image, a buffer).

    `u[i]` estimates the mean of `exp(s_ik / tau)` over image i's negatives in the whole dataset; 0 means not
    visited yet. Every process holds the same `u` ([`sogclr_loss`] writes the rows of every process); it is
    saved and loaded with the module's `state_dict` (1.28 M images: 5 MB).

    Args:
        num_images (`int`): rows of the training split; the indices passed to [`sogclr_loss`] are rows of it.
    """

    u: torch.Tensor

    def __init__(self, num_images: int) -> None:
        super().__init__()
        if num_images < 1:
            raise ValueError(f"num_images={num_images} must be the positive number of training images.")
        self.register_buffer("u", torch.zeros(num_images, dtype=torch.float32))


def sogclr_loss(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    indices: torch.Tensor,
    state: SogCLRState,
    temperature: float = 0.5,
    gamma: float = 0.9,
) -> NTXentOutput:
    """SogCLR's global contrastive loss (Yuan et al. 2022, Algorithm 1), and its update of `state.u`.

    For each anchor view i of image n, the batch's estimate `g_i = mean_{k != i, p} exp(s_ik / tau)` over its
    2N - 2 negatives (every process's) updates the image's running denominator,
    `u_i = (1 - gamma) u[n] + gamma g_i` (`gamma` 1 on an image's first visit, where `u[n]` is 0), and the
    negatives are weighted by `exp(s_ik / tau) / u_i`: the gradient is
    `(1 / tau) (-grad s_ip + mean_k exp(s_ik / tau) / u_i grad s_ik)` per anchor, averaged over 2B anchors,
    so that with `gamma = 1` (or on a first visit) it is exactly [`dcl_loss`]'s gradient. The official code
    (Optimization-AI/SogCLR) scales it by `2 tau` (no `1 / tau`, the two views' means summed): the same
    direction, its learning rate `2 tau` times ours. `u[n]` becomes the mean of its two views' `u_i`, the rows
    of every process are gathered and written on every process (once per call: call it once per step). The
    returned loss has that gradient and the value `mean(-s_ip / tau + log((2N - 2) u_i))`, DCL's loss with
    the global denominator.

    Args:
        z_a (`torch.Tensor` of shape `(B, d)`), z_b: the two views' projections, as [`nt_xent_loss`].
        indices (`torch.LongTensor` of shape `(B,)`): each image's row in the training split (`state`'s index).
        state ([`SogCLRState`]): `u`, updated in place.
        temperature (`float`, defaults to 0.5): tau (the official CIFAR runs: 0.3 or 0.5; keep 1 / tau < 80,
            or exp overflows float32).
        gamma (`float`, defaults to 0.9): the moving average's step, in (0, 1].

    Returns:
        [`NTXentOutput`] (its `logits` keep the positive's column, for [`contrastive_accuracy`]).

    Raises:
        ValueError: for indices that are not one per image, or `gamma` outside (0, 1].
    """
    if indices.shape != (z_a.shape[0],):
        raise ValueError(
            f"indices must have shape ({z_a.shape[0]},), one row per image; got {tuple(indices.shape)}."
        )
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma={gamma} must be in (0, 1] (the official default is 0.9).")
    with torch.autocast(device_type=z_a.device.type, enabled=False):
        pairs = _scored_pairs(z_a, z_b, temperature, "SogCLR")
        positive = pairs.logits[pairs.rows, pairs.positives]  # (2B,)
        negatives = pairs.negatives()
        count = 2 * pairs.global_batch - 2
        with torch.no_grad():
            exp_negatives = negatives.exp()  # 0 at the anchor's own and its positive's column
            estimate = exp_negatives.sum(dim=1) / count  # (2B,) the batch's g_i
            previous = state.u[indices].repeat(2)
            step = torch.where(previous > 0, torch.full_like(previous, gamma), torch.ones_like(previous))
            u = (1 - step) * previous + step * estimate  # (2B,)
            _write_every_process(state, indices, (u[: len(indices)] + u[len(indices) :]) / 2)
            weights = exp_negatives / (count * u[:, None])  # (2B, 2kB)
        finite = negatives.masked_fill(weights == 0, 0.0)  # -inf columns weigh 0: keep 0 * -inf out
        surrogate = (weights * finite).sum(dim=1) - positive  # the gradient's; its value means nothing
        value = torch.log(count * u) - positive.detach()
        loss = (surrogate + (value - surrogate).detach()).mean()
    return NTXentOutput(loss=loss, logits=pairs.logits, labels=pairs.positives)


def _write_every_process(state: SogCLRState, indices: torch.Tensor, values: torch.Tensor) -> None:
    """`state.u[indices] = values` with the indices and values of every process, on every process."""
    _, world_size = _world()
    if world_size > 1:
        indices, values = gather_with_grad(indices.to(values.device)), gather_with_grad(values)
    state.u[indices.to(state.u.device)] = values.to(state.u.device)


# The objectives a run may train with (`--objective`); each takes the same z and gives an [`NTXentOutput`].
OBJECTIVES = ("nt_xent", "dcl", "dclw", "sogclr")


class ContrastiveObjective(nn.Module):
    """One of `OBJECTIVES` with its settings, called as a loss of `(z_a, z_b, indices)`; SogCLR's `u` is its
    `state` (a [`SogCLRState`], in its `state_dict`: checkpoint it with the optimizer).

    Args:
        name (`str`, defaults to `"nt_xent"`): `nt_xent` ([`nt_xent_loss`]), `dcl`, `dclw` ([`dcl_loss`]) or
            `sogclr` ([`sogclr_loss`]).
        temperature (`float`, defaults to 0.5): tau (the model's `loss_temperature`).
        sigma (`float`, defaults to 0.5): DCLW's kernel width (Yeh et al. 2022).
        gamma (`float`, defaults to 0.9): SogCLR's moving-average step (Yuan et al. 2022).
        num_images (`int`, *optional*): rows of the training split; SogCLR needs it.

    Raises:
        ValueError: for an unknown objective, or SogCLR without `num_images`.
    """

    def __init__(
        self,
        name: str = "nt_xent",
        temperature: float = 0.5,
        sigma: float = 0.5,
        gamma: float = 0.9,
        num_images: int | None = None,
    ) -> None:
        super().__init__()
        if name not in OBJECTIVES:
            raise ValueError(f"objective {name!r} must be one of {', '.join(OBJECTIVES)}.")
        if name == "sogclr" and num_images is None:
            raise ValueError(
                "SogCLR needs the number of training images (num_images): it keeps a u per image."
            )
        self.name, self.temperature, self.sigma, self.gamma = name, temperature, sigma, gamma
        self.state = SogCLRState(num_images) if name == "sogclr" else None

    def forward(
        self, z_a: torch.Tensor, z_b: torch.Tensor, indices: torch.Tensor | None = None
    ) -> NTXentOutput:
        """The objective over this step's z (`indices`: each image's row of the training split, for SogCLR)."""
        if self.state is not None:
            if indices is None:
                raise ValueError("SogCLR needs each image's row of the training split (indices).")
            return sogclr_loss(z_a, z_b, indices, self.state, self.temperature, self.gamma)
        if self.name == "nt_xent":
            return nt_xent_loss(z_a, z_b, self.temperature)
        return dcl_loss(z_a, z_b, self.temperature, self.sigma if self.name == "dclw" else None)


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
