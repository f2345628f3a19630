"""The run's arithmetic, computed once: global batch, steps, warmup, peak learning rate, and when things happen.

Every number of the schedule comes from the arguments and the size of the data here, and nowhere else:
the loop asks the plan whether a step ends an epoch, is logged, checkpointed, monitored or snapshotted.
Steps are counted as optimizer updates done: "after step 4" is `done == 4`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..arguments import UsageError
from .arguments import PretrainingArguments, check_snapshot_epochs


@dataclass(frozen=True)
class RunPlan:
    """How long a run is and when its side work happens.

    Attributes:
        num_images (`int`): training images (all processes read the same split).
        local_batch (`int`): images per process and step (`--per_device_train_batch_size`).
        world_size (`int`): processes; the global batch `local_batch x world_size` sets the negatives.
        steps_per_epoch (`int`): full global batches per epoch (the last incomplete one is dropped).
        total_steps (`int`): `--max_steps`, or `--num_train_epochs` x steps per epoch (rounded up).
        warmup_steps (`int`): `--warmup_epochs` x steps per epoch, at most the whole run.
        peak_learning_rate (`float`): `--learning_rate x global_batch / 256` (the linear scaling rule).
        checkpoint_every (`int`, *optional*): steps between checkpoints; None for `--checkpointing_steps none`.
        logging_steps (`int`): steps between log records (each syncs with the device).
        knn_every_epochs (`int`): epochs between kNN-monitor checks (0: never).
        snapshot_epochs (`tuple[int, ...]`): epochs after which the encoder is kept.
    """

    num_images: int
    local_batch: int
    world_size: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    peak_learning_rate: float
    checkpoint_every: int | None
    logging_steps: int
    knn_every_epochs: int
    snapshot_epochs: tuple[int, ...]

    @classmethod
    def create(cls, args: PretrainingArguments, num_images: int, world_size: int) -> RunPlan:
        """The plan of `args` for `num_images` training images shared by `world_size` processes.

        Raises:
            ValueError: if the global batch exceeds the data or is below 2, or a snapshot epoch lies
                beyond the end of the run.
        """
        local_batch = args.per_device_train_batch_size
        check_batch_fits(num_images, local_batch, world_size)
        global_batch = local_batch * world_size
        steps_per_epoch = num_images // global_batch
        total_steps = (
            args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
        )
        checkpoint_every = {"epoch": steps_per_epoch, "none": None}.get(args.checkpointing_steps)
        if args.checkpointing_steps.isdigit():
            checkpoint_every = int(args.checkpointing_steps)
        plan = cls(
            num_images=num_images,
            local_batch=local_batch,
            world_size=world_size,
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            warmup_steps=min(total_steps, round(args.warmup_epochs * steps_per_epoch)),
            peak_learning_rate=args.learning_rate * global_batch / 256,  # linear scaling rule
            checkpoint_every=checkpoint_every,
            logging_steps=args.logging_steps,
            knn_every_epochs=args.knn_every_epochs,
            snapshot_epochs=tuple(args.snapshot_epochs),
        )
        check_snapshot_epochs(args.snapshot_epochs, plan.completed_epochs(total_steps))
        return plan

    @property
    def global_batch(self) -> int:
        """Images per step over all processes."""
        return self.local_batch * self.world_size

    def position(self, done: int) -> tuple[int, int]:
        """(epoch, batch within it) of the step that follows `done` steps."""
        return divmod(done, self.steps_per_epoch)

    def completed_epochs(self, done: int) -> int:
        """Whole epochs finished after `done` steps."""
        return done // self.steps_per_epoch

    def learning_rate(self, step: int) -> float:
        """The learning rate of step `step` (counted from 0): see [`learning_rate_at`]."""
        return learning_rate_at(step, self.total_steps, self.warmup_steps, self.peak_learning_rate)

    def ends_epoch(self, done: int) -> bool:
        return done % self.steps_per_epoch == 0

    def checkpoints_after(self, done: int) -> bool:
        """Every `checkpoint_every` steps and after the last step (never with `--checkpointing_steps none`)."""
        every = self.checkpoint_every
        return every is not None and (done % every == 0 or done == self.total_steps)

    def logs_after(self, done: int) -> bool:
        """Every `logging_steps`, at each epoch's end, after the last step (a run shorter than `logging_steps`
        logs too), and before each checkpoint (whose weights a non-finite loss must not have spoiled: the log
        is where the loss is read back from the device)."""
        return (
            done % self.logging_steps == 0
            or self.ends_epoch(done)
            or done == self.total_steps
            or self.checkpoints_after(done)
        )

    def monitors_after(self, done: int) -> bool:
        """At the end of every `knn_every_epochs`-th epoch, and of the last epoch."""
        if self.knn_every_epochs == 0 or not self.ends_epoch(done):
            return False
        return self.completed_epochs(done) % self.knn_every_epochs == 0 or done == self.total_steps

    def snapshots_after(self, done: int) -> bool:
        return self.ends_epoch(done) and self.completed_epochs(done) in self.snapshot_epochs


def learning_rate_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warmup to `peak`, then cosine decay to 0 (paper, Appendix B.1)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def check_batch_fits(num_images: int, local_batch: int, world_size: int) -> None:
    """Refuse a global batch larger than the data, or one without a negative (NT-Xent needs 2 images)."""
    global_batch = local_batch * world_size
    if global_batch > num_images:
        raise UsageError(
            f"The global batch ({local_batch} per device x {world_size} processes = {global_batch}) is larger "
            f"than the {num_images} training images; lower --per_device_train_batch_size or use more data."
        )
    if global_batch < 2:
        raise UsageError(
            "NT-Xent needs at least 2 images per global batch; raise --per_device_train_batch_size."
        )
