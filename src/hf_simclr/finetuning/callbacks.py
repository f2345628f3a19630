"""What Trainer does besides training here: stop at the end of a step after a stop signal, checkpoints with
plain file modes, saves without a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import (
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainingArguments,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging as transformers_logging

from .. import stop_signals
from ..folder_format import (
    give_plain_mode,
)


class StopOnSignal(TrainerCallback):
    """After a stop signal ([`stop_signals`]), Trainer saves a checkpoint at the end of the step and stops."""

    def on_step_end(
        self, args: TrainingArguments, state: Any, control: TrainerControl, **kwargs: Any
    ) -> None:
        if stop_signals.pending() is not None:
            control.should_save = True
            control.should_training_stop = True


class ReadableCheckpoints(TrainerCallback):
    """Each Trainer checkpoint gets the file modes of a plain `open()` (safetensors writes 0600)."""

    def on_save(self, args: TrainingArguments, state: Any, control: TrainerControl, **kwargs: Any) -> None:
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            give_plain_mode(checkpoint)


class QuietCheckpointSaves(TrainerCallback):
    """Trainer's checkpoints are saved without transformers' "Writing model shards" bar: for one small file it
    says nothing, and in a redirected log it is drawn with cursor movements under the training bar."""

    def on_train_begin(
        self, args: TrainingArguments, state: Any, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.bars = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()

    def on_train_end(
        self, args: TrainingArguments, state: Any, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.bars:
            transformers_logging.enable_progress_bar()


def stop_after_signal(trainer: Trainer, output_dir: Path) -> None:
    """Stop with the checkpoint Trainer saved, if a stop signal ended its training early.

    Raises:
        Stopped: naming the checkpoint and the resume command.
    """
    signal_number = stop_signals.pending()
    if signal_number is None or trainer.state.global_step >= trainer.state.max_steps:
        return
    checkpoint = output_dir / f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}"
    raise stop_signals.Stopped(
        signal_number,
        f"Trainer saved {checkpoint} after step {trainer.state.global_step} of {trainer.state.max_steps}. "
        f"Continue with the same command and --resume_from_checkpoint latest.",
        script="finetune.py",
    )
