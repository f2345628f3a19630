"""The linear probe: a standardised linear classifier on frozen representations, fit with L-BFGS.

Its weight decay is picked on a held-out slice of the training split, then it is refit on all of it;
[`evaluate_representations`] gives the probe's and the kNN's accuracies of one set of representations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import default_device
from ..progress import progress_bar
from .arguments import DEFAULT_WEIGHT_DECAYS
from .knn import knn_accuracies
from .metrics import round_accuracy, top_k_accuracy


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
    progress: str | None = None,
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
        progress (`str`, *optional*): a label for a progress bar over the fits (minutes on a busy CPU);
            None shows none.

    Returns:
        [`LinearProbe`] trained on all rows with the best weight decay (ties go to the larger one);
        its `holdout_top1` lists every candidate's held-out accuracy.
    """
    holdout_top1: dict[float, float] = {}
    fits = len(weight_decays) + 1 if len(weight_decays) > 1 else 1
    with progress_bar(total=fits, desc=progress, unit="fit", shown=progress is not None) as bar:
        if len(weight_decays) > 1:
            count = h.shape[0]
            held = min(count - 1, max(1, round(holdout_fraction * count)))
            order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).to(h.device)
            held_out, kept = order[:held], order[held:]
            for weight_decay in weight_decays:
                probe = train_linear_classifier(h[kept], y[kept], num_classes, weight_decay, max_iter)
                holdout_top1[weight_decay] = top_k_accuracy(probe.logits(h[held_out]), y[held_out], 1)
                bar.update()
            best = max(weight_decays, key=lambda weight_decay: (holdout_top1[weight_decay], weight_decay))
        else:
            best = weight_decays[0]
        probe = train_linear_classifier(h, y, num_classes, best, max_iter)
        bar.update()
    probe.holdout_top1 = holdout_top1
    return probe


def probe_metrics(probe: LinearProbe, eval_h: torch.Tensor, eval_y: torch.Tensor) -> dict[str, Any]:
    """Top-1, top-3 and top-5 accuracy of a fitted probe on evaluation representations, and its decay."""
    logits = probe.logits(eval_h)
    metrics = {f"linear_top{k}": round_accuracy(top_k_accuracy(logits, eval_y, k)) for k in (1, 3, 5)}
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
    progress: str | None = None,
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
    probe = fit_linear_probe(
        train_h, train_y, num_classes, weight_decays, holdout_fraction, seed, max_iter, progress=progress
    )
    knn = knn_accuracies(train_h, train_y, eval_h, eval_y, knn_k, num_classes=num_classes)
    metrics = {
        **probe_metrics(probe, eval_h, eval_y),
        "holdout_top1": {f"{wd:g}": round_accuracy(acc) for wd, acc in probe.holdout_top1.items()},
        "knn_top1": {str(k): round_accuracy(acc) for k, acc in knn.items()},
        "feature_dim": int(train_h.shape[1]),
    }
    return metrics, probe
