"""The online linear head (google-research/simclr's `lineareval_while_pretraining`): a linear classifier of the
training labels on stop-gradient h, trained beside the encoder, giving a supervised top-1 at every log step for
the cost of one matmul.

It has its own optimizer (Adam, lr 1e-3: h's scale changes as the encoder learns, and Adam's steps do not
depend on it), takes `h.detach()` (no gradient reaches the encoder), starts from zeros (it draws nothing from
the random state the run's other parts use) and computes in float32. Its top-1 is measured on each step's
augmented views before its update: a training accuracy, a curve between the kNN monitor's checks, not the linear
probe's number. With several processes its gradient is averaged over them, so every process holds the same
head. It is checkpointed with the run (exact resume) and never saved in the model folder.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from datasets import Dataset
from torch import nn

from ..data import decode_labels

# Adam's step: the head's rate, independent of the encoder's schedule.
ONLINE_HEAD_LEARNING_RATE = 1e-3


class OnlineLinearHead(nn.Module):
    """A linear classifier on h with its own Adam, updated once per step on the step's labelled views.

    Args:
        hidden_size (`int`): width of h.
        labels (`torch.LongTensor` of shape `(N,)`): the training split's labels (-1: unlabelled, skipped), on
            the training device.
    """

    def __init__(self, hidden_size: int, labels: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("labels", labels, persistent=False)
        self.classifier = nn.Linear(hidden_size, int(labels.max()) + 1, device=labels.device)
        nn.init.zeros_(self.classifier.weight)  # no random draw: the run's random state is left as it is
        nn.init.zeros_(self.classifier.bias)
        self.optimizer = torch.optim.Adam(self.classifier.parameters(), lr=ONLINE_HEAD_LEARNING_RATE)

    def step(self, h: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Score and then train on this step's views: `h` `(2B, hidden_size)` (first views, then second views)
        of the images at rows `indices` `(B,)`; returns the top-1 before the update (a device scalar)."""
        labels = self.labels[indices.to(self.labels.device)].repeat(2)
        labelled = labels >= 0
        with torch.autocast(device_type=h.device.type, enabled=False):
            logits = self.classifier(h.detach().float())
            losses = F.cross_entropy(logits, labels.clamp_min(0), reduction="none")
            count = labelled.sum().clamp_min(1)
            loss = (losses * labelled).sum() / count
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_over_processes(list(self.classifier.parameters()))
        self.optimizer.step()
        with torch.no_grad():
            return ((logits.argmax(dim=1) == labels) & labelled).sum().float() / count

    def state_dict(self, *args, **kwargs) -> dict:
        """The classifier's weights and its optimizer's state (for `register_for_checkpointing`)."""
        return {"classifier": self.classifier.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict, strict: bool = True, assign: bool = False) -> None:
        self.classifier.load_state_dict(state["classifier"])
        self.optimizer.load_state_dict(state["optimizer"])


def average_over_processes(parameters: list[nn.Parameter]) -> None:
    """Each parameter's gradient replaced by its mean over the processes (one all-reduce); one process: as is."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    flat = torch.cat([p.grad.flatten() for p in parameters])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in parameters:
        p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
        offset += p.numel()


def build_online_head(
    applied: dict[str, Any], hidden_size: int, dataset: Dataset, device: torch.device
) -> OnlineLinearHead | None:
    """The online linear head on h, where it applies (`--online_linear_head` and a labelled training split)."""
    if not applied["online_linear_head_applied"]:
        return None
    return OnlineLinearHead(hidden_size, decode_labels(dataset).to(device))
