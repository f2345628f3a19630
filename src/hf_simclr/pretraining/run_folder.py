"""One run per output folder: which files make a run, and what a new run does with a folder that holds one.

Two runs in one folder would prune each other's checkpoints and resume the wrong one, so a new run into a
folder that holds another run's files is refused, or with `--overwrite_output_dir` those files are deleted
first; a run that resumes from the folder's own checkpoint continues the run there. What a run leaves that
is not its to delete (the log, snapshots and checkpoints of a start interrupted before its first checkpoint;
those after the checkpoint a resume goes back to) is set aside in `abandoned/<when>/`, never deleted and
never read by a run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..arguments import UsageError
from ..folder_format import (
    ABANDONED_DIR,
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
    SNAPSHOT_GLOB,
    STAGING_PREFIX,
    TRACKER_PROJECT,
    TRAINING_ARGS_FILE,
    TSNE_FILE,
    WEIGHTS_FILES,
    write_text_atomically,
)
from ..model_folder import CODE_FILES, read_json, read_json_lines
from .checkpoints import checkpoint_step, list_checkpoints

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
# resumed, so the same command simply starts it again (with these set aside: [`set_aside`]).
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
    pattern = re.compile(RUN_FILE_PATTERNS[1])
    start_up = [path for path in found if path.name in START_UP_FILES or pattern.fullmatch(path.name)]
    checkpoints = [path for path in found if path.name == CHECKPOINT_DIR]
    return len(start_up) + len(checkpoints) == len(found) and not list_checkpoints(output_dir)


def prepare_output_dir(
    output_dir: Path, checkpoint: Path | None, overwrite: bool, say: Callable[[str], Any]
) -> None:
    """Make sure that this run's files never mix with another run's, before any work starts (the main
    process's work: every process waits for it, and each raises its refusal: `collective.on_main`).

    A run that resumes from one of the folder's own checkpoints continues the run there, with what the run
    wrote after that checkpoint set aside ([`set_aside_after`]). Any other run (a fresh one, or one resuming
    from a checkpoint elsewhere) needs a folder free of another run's files (`earlier_run_files`): it is
    refused, or with `overwrite` those files are deleted first. What a run interrupted before its first
    checkpoint left (its log, tracker files, snapshots) is set aside without asking, and the same command
    starts it again.

    Raises:
        UsageError: if the folder holds another run and `overwrite` is False; the message names the files
            and the ways out (--resume_from_checkpoint, --overwrite_output_dir, another --output_dir).
    """
    if checkpoint is not None and checkpoint.resolve().parent == (output_dir / CHECKPOINT_DIR).resolve():
        set_aside_after(output_dir, checkpoint_step(checkpoint), say)
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
    if restart:  # its log, trackers' files and snapshots set aside; half-written folders removed
        kept = [path for path in found if path.name in START_UP_FILES]
        aside = set_aside(output_dir, kept)
        found = [path for path in found if path not in kept]
        say(f"an earlier start interrupted before its first checkpoint: set its {names} aside in {aside}.")
    for path in found:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if found and not restart:
        say(f"--overwrite_output_dir: deleted the earlier run's {names} in {output_dir}.")


def set_aside_after(output_dir: Path, step: int, say: Callable[[str], Any]) -> None:
    """A resume from checkpoint `step` of this folder: the checkpoints and snapshots of later steps, and the log's
    records of later steps, are set aside, so that `latest` never takes the abandoned run's checkpoints again and
    the log holds each step once (the resumed run writes them anew)."""
    later = [path for path in list_checkpoints(output_dir) if checkpoint_step(path) > step]
    later += [path for path in snapshots(output_dir) if snapshot_step(path) > step]
    log_file = output_dir / LOG_HISTORY_FILE
    records = read_json_lines(log_file) if log_file.is_file() else []
    cut = [record for record in records if record.get("step", 0) > step]
    if not later and not cut:
        return
    aside = set_aside(output_dir, later)
    if cut:
        (aside / LOG_HISTORY_FILE).write_text("".join(json.dumps(record) + "\n" for record in cut))
        kept = [record for record in records if record.get("step", 0) <= step]
        write_text_atomically(log_file, "".join(json.dumps(record) + "\n" for record in kept))
    what = [path.relative_to(output_dir).as_posix() for path in later] + (
        [f"{len(cut)} log records"] if cut else []
    )
    say(f"Resuming from step {step}: set aside what the run wrote after it ({', '.join(what)}) in {aside}.")


def set_aside(output_dir: Path, paths: list[Path]) -> Path:
    """Move `paths` (inside `output_dir`) into a new `abandoned/<when>/`, keeping their place below the folder;
    returns that folder."""
    aside = output_dir / ABANDONED_DIR / time.strftime("%Y%m%d-%H%M%S")
    while aside.exists():
        aside = aside.with_name(aside.name + "-1")
    aside.mkdir(parents=True)
    for path in paths:
        target = aside / path.relative_to(output_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    return aside


def snapshots(output_dir: Path) -> list[Path]:
    """The snapshot folders `snapshots/epoch_N` of a run."""
    folder = output_dir / SNAPSHOT_DIR
    return sorted(folder.glob(SNAPSHOT_GLOB)) if folder.is_dir() else []


def snapshot_step(snapshot: Path) -> int:
    """The step a snapshot was taken after, as its `training_args.json` records it (0 when it does not say)."""
    return int((read_json(snapshot / TRAINING_ARGS_FILE) or {}).get("steps", 0))
