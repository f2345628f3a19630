"""The optimizer of a run: LARS (the paper's), SGD or AdamW, without weight decay on biases and norms."""

from __future__ import annotations

import torch
from torch import nn

from .arguments import PretrainingArguments


def build_optimizer(model: nn.Module, args: PretrainingArguments, lr: float) -> torch.optim.Optimizer:
    """LARS, SGD or AdamW; biases and norm parameters (1-d) get no weight decay and, for LARS, no
    trust-ratio adaptation (timm's Lars adapts only groups with weight decay), as in the paper."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = {"fused": True} if torch.cuda.is_available() else {}
    if args.optimizer == "lars":
        from timm.optim import Lars

        return Lars(groups, lr=lr, momentum=args.momentum)
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=args.momentum, **fused)
    return torch.optim.AdamW(groups, lr=lr, **fused)
