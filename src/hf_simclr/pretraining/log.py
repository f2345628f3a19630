"""The run's log: loss, learning rate, contrastive top-1, the online head's top-1 and throughput per interval, and
the kNN checks.

Every record goes to the trackers and is appended to `log_history.jsonl` (main process only). Between
records the loss and contrastive top-1 are summed on the device, so a step costs no host sync.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from ..progress import Progress
from .plan import RunPlan


class IntervalLog:
    """Sums of the loss and contrastive top-1 since the last record, and the wall time they took.

    Args:
        accelerator (`Accelerator`): reduces the sums over processes, and logs to the trackers.
        log_file (`Path`): `log_history.jsonl`.
        plan ([`RunPlan`]): the global batch and steps per epoch.
    """

    def __init__(self, accelerator: Accelerator, log_file: Path, plan: RunPlan) -> None:
        self.accelerator, self.log_file, self.plan = accelerator, log_file, plan
        self.loss = torch.zeros((), device=accelerator.device)
        self.top1 = torch.zeros((), device=accelerator.device)
        self.online_top1: torch.Tensor | None = None  # with the online linear head
        self.steps = 0
        if accelerator.is_main_process:
            drop_partial_last_line(log_file)
        self.restart_clock()

    def restart_clock(self) -> None:
        """Start timing the interval now (work between steps, such as the kNN monitor, is not counted)."""
        self.started = time.time()

    def add(self, loss: torch.Tensor, top1: torch.Tensor, online_top1: torch.Tensor | None = None) -> None:
        """Add one step's loss, contrastive top-1 and the online head's top-1 (detached device scalars)."""
        self.loss += loss
        self.top1 += top1
        if online_top1 is not None:
            self.online_top1 = online_top1 if self.online_top1 is None else self.online_top1 + online_top1
        self.steps += 1

    def write(self, done: int, learning_rate: float, progress: Progress) -> None:
        """Write the interval's record after `done` steps (one host sync), show it on the bar (redirected: as a
        line), start a new one."""
        seconds = time.time() - self.started
        # Mean over processes: each process's loss covers its own anchors only.
        sums = [self.loss, self.top1] + ([] if self.online_top1 is None else [self.online_top1])
        totals = self.accelerator.reduce(torch.stack(sums), reduction="mean")
        record = {
            "step": done,
            "epoch": round(done / self.plan.steps_per_epoch, 4),
            "loss": totals[0].item() / self.steps,
            "learning_rate": learning_rate,
            "contrastive_top1": totals[1].item() / self.steps,
            "images_per_second": self.steps * self.plan.global_batch / seconds,
        }
        online = {} if self.online_top1 is None else {"online_top1": totals[2].item() / self.steps}
        record.update(online)
        shown = {"loss": f"{record['loss']:.4f}", "lr": f"{learning_rate:.3g}"}
        shown["top1"] = f"{record['contrastive_top1']:.3f}"
        if online:
            shown["online_top1"] = f"{record['online_top1']:.3f}"
        progress.set_postfix(**shown, img_s=f"{record['images_per_second']:.0f}")
        log_record(self.accelerator, self.log_file, record)
        self.loss, self.top1, self.steps = torch.zeros_like(self.loss), torch.zeros_like(self.top1), 0
        self.online_top1 = None
        self.restart_clock()


def log_record(accelerator: Accelerator, log_file: Path, record: dict[str, Any]) -> None:
    """Send a record to the trackers and append it to `log_history.jsonl` (main process only)."""
    accelerator.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])
    if accelerator.is_main_process:
        with log_file.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def drop_partial_last_line(log_file: Path) -> None:
    """Cut a last line that a run killed while appending left without its newline, so that the records this
    run appends start on a line of their own (readers skip such a line: `read_json_lines`)."""
    if not log_file.is_file():
        return
    content = log_file.read_bytes()
    if content and not content.endswith(b"\n"):
        with log_file.open("r+b") as handle:
            handle.truncate(content.rfind(b"\n") + 1)
