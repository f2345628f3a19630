"""One run per output folder: which files make a run, and what a new run does with a folder that holds one.

Two runs in one folder would prune each other's checkpoints and resume the wrong one, so a new run into a
folder that holds another run's files is refused, or with `--overwrite_output_dir` those files are deleted
first; a run that resumes from the folder's own checkpoint continues the run there.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from accelerate import Accelerator

from ..arguments import UsageError
from ..folder_format import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
    IMAGE_PROCESSOR_FILE,
    LOG_HISTORY_FILE,
    MODEL_CARD_FILE,
    NEIGHBORS_FILE,
    RESULTS_FILE,
    SHARD_PATTERN,
    SNAPSHOT_DIR,
    STAGING_PREFIX,
    TRACKER_PROJECT,
    TRAINING_ARGS_FILE,
    TSNE_FILE,
    WEIGHTS_FILES,
)
from ..model_folder import CODE_FILES

# What a run leaves in its output folder: checkpoints, logs, the model folder and, once probed, its
# results, card and plots; also weight shards and half-written saves (patterns). A new run into that
# folder is refused, or with --overwrite_output_dir these are deleted first: never two runs in one folder.
RUN_FILES = (
    CHECKPOINT_DIR,
    SNAPSHOT_DIR,
    LOG_HISTORY_FILE,
    TRACKER_PROJECT,
    TRAINING_ARGS_FILE,
    CONFIG_FILE,
    IMAGE_PROCESSOR_FILE,
    *WEIGHTS_FILES,
    *CODE_FILES,
    RESULTS_FILE,
    MODEL_CARD_FILE,
    TSNE_FILE,
    NEIGHBORS_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
)
RUN_FILE_PATTERNS = (SHARD_PATTERN, re.escape(STAGING_PREFIX) + ".*")
# What a run writes before its first complete checkpoint or model: an interrupted start, which cannot be
# resumed and holds nothing to keep, so the same command simply starts it again.
START_UP_FILES = (LOG_HISTORY_FILE, TRACKER_PROJECT, SNAPSHOT_DIR)


def earlier_run_files(output_dir: Path) -> list[Path]:
    """The files and folders of a run (`RUN_FILES`, `RUN_FILE_PATTERNS`) found in `output_dir`."""
    if not output_dir.is_dir():
        return []
    pattern = re.compile("|".join(RUN_FILE_PATTERNS))
    return sorted(
        path for path in output_dir.iterdir() if path.name in RUN_FILES or pattern.fullmatch(path.name)
    )


def interrupted_start(output_dir: Path, found: list[Path]) -> bool:
    """Whether `found` (a folder's run files) is only what a run writes before its first checkpoint."""
    from .checkpoints import list_checkpoints

    pattern = re.compile(RUN_FILE_PATTERNS[1])
    start_up = [path for path in found if path.name in START_UP_FILES or pattern.fullmatch(path.name)]
    checkpoints = [path for path in found if path.name == CHECKPOINT_DIR]
    return len(start_up) + len(checkpoints) == len(found) and not list_checkpoints(output_dir)


def prepare_output_dir(
    accelerator: Accelerator, output_dir: Path, checkpoint: Path | None, overwrite: bool
) -> None:
    """Make sure that this run's files never mix with another run's, before any work starts.

    A run that resumes from one of the folder's own checkpoints continues the run there. Any other run
    (a fresh one, or one resuming from a checkpoint elsewhere) needs a folder free of another run's
    files (`earlier_run_files`): it is refused, or with `overwrite` those files are deleted first. What a run
    interrupted before its first checkpoint left (its log, tracker files, half-written checkpoint) is
    deleted without asking: that start cannot be resumed, and the same command starts it again.

    Raises:
        UsageError: if the folder holds another run and `overwrite` is False; the message names the files
            and the ways out (--resume_from_checkpoint, --overwrite_output_dir, another --output_dir).
    """
    if checkpoint is not None and checkpoint.resolve().parent == (output_dir / CHECKPOINT_DIR).resolve():
        return
    found = earlier_run_files(output_dir)
    names = ", ".join(path.name for path in found)
    restart = bool(found) and interrupted_start(output_dir, found)
    if found and not (overwrite or restart):
        raise UsageError(
            f"--output_dir {output_dir} holds another run ({names}). Continue it with --resume_from_checkpoint "
            f"latest, delete it and start afresh with --overwrite_output_dir, or pick another --output_dir; "
            f"two runs in one folder would prune each other's checkpoints and resume the wrong one."
        )
    accelerator.wait_for_everyone()  # every process has looked before the main one deletes
    if found and accelerator.is_main_process:
        for path in found:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        why = (
            "an earlier start interrupted before its first checkpoint"
            if restart
            else "--overwrite_output_dir"
        )
        accelerator.print(f"{why}: deleted the earlier run's {names} in {output_dir}.")
    accelerator.wait_for_everyone()
