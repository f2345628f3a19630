"""The one place that watches for non-finite numbers: a NaN or infinite loss, or spoiled weights.

The loss is watched on the device (no host sync per step) and read back at each log record; the weights
(BatchNorm statistics too, which the loss does not see) before each checkpoint, snapshot and the final
save. Either stops the run with the same advice, and removes the checkpoints that hold spoiled weights.
With several processes what each saw is agreed first (a loss or a BatchNorm buffer may go non-finite on one
process alone: fp16 overflow, statistics that differ without SyncBatchNorm), so all stop together, at the
same step, with the same message.
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from ..collective import Processes
from .checkpoints import drop_checkpoints_from

ADVICE = "Lower --learning_rate, or use --mixed_precision bf16 instead of fp16."


class NonFiniteWatch:
    """Remembers the first step whose loss was not finite, on the device, and stops the run when asked.

    Args:
        accelerator (`Accelerator`): the run's.
        processes (`Processes`): the run's, which agree on what each saw (checkpoints are removed by the main one).
        output_dir (`Path`): the run folder, whose spoiled checkpoints are removed.
    """

    def __init__(self, accelerator: Accelerator, processes: Processes, output_dir: Path) -> None:
        self.processes, self.output_dir = processes, output_dir
        self.first_bad_step = torch.full((), -1, device=accelerator.device)

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Note `loss` of step `step` (counted from 0), without a host sync."""
        self.first_bad_step = torch.where(
            (self.first_bad_step < 0) & ~torch.isfinite(loss),
            torch.full_like(self.first_bad_step, step),
            self.first_bad_step,
        )

    def check_loss(self) -> None:
        """Stop if a loss seen so far on any process was not finite (one host sync, one agreement).

        Raises:
            FloatingPointError: naming the step and the last good checkpoint; later ones are removed.
        """
        seen = [step for step in self.processes.gather(int(self.first_bad_step.item())) if step >= 0]
        if seen:
            bad = min(seen)  # updates applied before the first non-finite loss of any process
            kept = drop_checkpoints_from(self.processes, self.output_dir, bad)
            raise FloatingPointError(
                f"Non-finite loss at step {bad + 1}; stopping. Last good checkpoint: {kept or 'none'} "
                f"(later ones hold the weights that gave it and were removed). {ADVICE}"
            )

    def check_weights(self, model: nn.Module, when: str, outcome: str, drop_from: int | None = None) -> None:
        """Stop if a weight or buffer of `model` is not finite on any process (agreed, so all stop).

        Args:
            when (`str`): e.g. "after step 8", for the message.
            outcome (`str`): what the stop means, e.g. "the model is not saved".
            drop_from (`int`, *optional*): remove the checkpoints of this step and later first; the message
                then names the last good one.

        Raises:
            FloatingPointError: with `outcome` and the advice.
        """
        if all(self.processes.gather(weights_are_finite(model))):
            return
        if drop_from is not None:
            kept = drop_checkpoints_from(self.processes, self.output_dir, drop_from)
            outcome = f"{outcome}. Last good checkpoint: {kept or 'none'}"
        raise FloatingPointError(f"Non-finite weights {when}; {outcome}. {ADVICE}")


def weights_are_finite(model: nn.Module) -> bool:
    """Whether every floating-point parameter and buffer is finite (one device sync)."""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())
