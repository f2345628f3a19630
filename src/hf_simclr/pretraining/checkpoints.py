"""Checkpoints that resume exactly, or refuse to: the step, `save_state`, and the settings a resume must share.

A checkpoint `checkpoints/step_N` holds the model, optimizer, RNG states and step (`accelerate`'s
`save_state`) and `resume_settings.json`; it is written as `.tmp-step_N` and renamed when complete. A resume
from it is refused when this run's settings differ from its own (each difference named).
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate import Accelerator
from safetensors import safe_open

from ..arguments import UsageError
from ..collective import Processes, on_main, together
from ..configuration_simclr import SimCLRConfig
from ..folder_format import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILES,
    CHECKPOINT_PATTERN,
    LEGACY_WEIGHTS_FILE,
    RESUME_SETTINGS_FILE,
    WEIGHTS_FILE,
    begin_staging,
    checkpoint_name,
    finish_staging,
    full_disk_named,
    staging_for,
    write_json_atomically,
)
from ..identity import dataset_identity
from ..model_folder import read_json

# What `accelerator.save_state` writes for the model and the optimizer (the weights may be pytorch_model.bin).
# Written into each checkpoint: what a resumed run must share with it (see `resume_settings`).
# The architecture a resume must keep: every argument of SimCLRConfig (backbone, head, image size, ...).
ARCHITECTURE_SETTINGS = tuple(
    name for name in inspect.signature(SimCLRConfig.__init__).parameters if name not in ("self", "kwargs")
)
# Where each resume setting comes from, for the message that refuses a mismatch (default: --<name>).
RESUME_SETTING_SOURCES = {
    "global_batch_size": "--per_device_train_batch_size x processes",
    "num_train_samples": "--dataset_name, --train_split, --max_train_samples",
    "dataset_identity": "the data's content: --dataset_name, --train_split, --max_train_samples, --seed",
    "total_steps": "--num_train_epochs or --max_steps, with the global batch",
    "warmup_steps": "--warmup_epochs, with the global batch",
    "image_size": "--image_size or --preset",
}


class TrainState:
    """Optimizer steps taken so far; checkpointed with the model through `register_for_checkpointing`."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


def checkpoint_step(path: Path) -> int:
    """N of a checkpoint folder `step_N`."""
    return int(path.name.split("_")[1])


def list_checkpoints(output_dir: Path) -> list[Path]:
    """The finished checkpoints `checkpoints/step_N` of a run, oldest first."""
    root = output_dir / CHECKPOINT_DIR
    finished = (
        [p for p in root.glob("step_*") if re.fullmatch(CHECKPOINT_PATTERN, p.name)] if root.is_dir() else []
    )
    return sorted(finished, key=checkpoint_step)


def find_checkpoint(output_dir: Path, resume_from_checkpoint: str, say: Callable[[str], Any] = print) -> Path:
    """Resolve `latest` (the newest complete `checkpoints/step_N`) or a path to a checkpoint folder.

    Every checkpoint is verified first ([`checkpoint_damage`]: each file present and readable), before any
    data is read. `latest` skips a damaged checkpoint (a run killed or a disk filled while it was written)
    for the newest complete one, and `say`s which it took and why.

    Raises:
        UsageError: when there is no checkpoint, the path is not one (a model folder, an empty folder), or
            every checkpoint is damaged; the message names the file and what is wrong with it.
    """
    if resume_from_checkpoint != "latest":
        path = Path(resume_from_checkpoint)
        if not is_checkpoint(path):
            raise UsageError(
                f"--resume_from_checkpoint {path} is not a checkpoint folder (it lacks the model and optimizer "
                f"state {', '.join(CHECKPOINT_FILES)} that checkpoints/step_N folders hold); pass one of those, "
                f"or latest."
            )
        damage = checkpoint_damage(path)
        if damage is not None:
            complete = [
                c for c in reversed(list_checkpoints(path.parent.parent)) if checkpoint_damage(c) is None
            ]
            offer = f"pass the newest complete one, {complete[0]}, or latest" if complete else "start afresh"
            raise UsageError(f"--resume_from_checkpoint {path} is damaged: {damage}. {DAMAGE_CAUSE} {offer}.")
        return path
    candidates = list_checkpoints(output_dir)
    if not candidates:
        raise UsageError(
            f"--resume_from_checkpoint latest: no checkpoint in {output_dir / CHECKPOINT_DIR} (a run writes one "
            f"every --checkpointing_steps); start afresh: the same command without --resume_from_checkpoint."
        )
    damaged = []
    for path in reversed(candidates):
        damage = checkpoint_damage(path)
        if damage is None:
            for skipped, why in damaged:
                say(f"Skipped {skipped}: {why}. {DAMAGE_CAUSE}")
            if damaged:
                say(f"--resume_from_checkpoint latest: taking {path}, the newest complete checkpoint.")
            return path
        damaged.append((path, damage))
    raise UsageError(
        "--resume_from_checkpoint latest: every checkpoint is damaged ("
        + "; ".join(f"{path.name}: {why}" for path, why in damaged)
        + f"). {DAMAGE_CAUSE} Start afresh with --overwrite_output_dir."
    )


DAMAGE_CAUSE = "A run killed, or a disk that filled, while it was written leaves such a checkpoint."


def checkpoint_damage(path: Path) -> str | None:
    """What makes the checkpoint `path` unusable, or None: every file that `accelerator.load_state` and the
    resume check read must be there and read whole (weights, optimizer, RNG states, step, settings).

    Reading them all costs about what the resume's own loading costs (well under a second for ResNet-18).
    """
    missing = [name for name in CHECKPOINT_FILES[1:] if not (path / name).is_file()]
    if not any((path / name).is_file() for name in (WEIGHTS_FILE, LEGACY_WEIGHTS_FILE)):
        missing.insert(0, WEIGHTS_FILE)
    if missing:
        return f"{', '.join(missing)} missing"
    for file in sorted(path.iterdir()):
        problem = unreadable(file) if file.is_file() else None
        if problem is not None:
            return f"{file.name} {problem}"
    return None


def unreadable(file: Path) -> str | None:
    """Why a checkpoint file cannot be read whole (empty, truncated, not what its name says), or None."""
    try:
        if file.stat().st_size == 0:
            return "is empty"
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_tensor(key)
        elif file.suffix in (".bin", ".pkl", ".pt", ".pth"):
            torch.load(file, map_location="cpu", weights_only=False)
        elif file.suffix == ".json":
            json.loads(file.read_text())
    except Exception as error:  # each library's own error for a damaged file: named, not raised
        reason = str(error).split(". ")[0].splitlines()[0] if str(error) else ""  # the first sentence
        return f"cannot be read ({type(error).__name__}: {reason})"
    return None


def is_checkpoint(path: Path) -> bool:
    """Whether `path` holds what `accelerator.load_state` reads: the weights and the optimizer's state."""
    return (path / CHECKPOINT_FILES[1]).is_file() and any(
        (path / name).is_file() for name in (WEIGHTS_FILE, LEGACY_WEIGHTS_FILE)
    )


def resume_settings(
    config: SimCLRConfig,
    dataset: datasets.Dataset,
    optimizer: str,
    global_batch: int,
    total_steps: int,
    warmup_steps: int,
) -> dict[str, Any]:
    """What a resumed run must share with its checkpoint, saved in each one as `resume_settings.json`.

    The step counter only means the same thing with the same data (its length and content:
    [`dataset_identity`], so a copy of the data staged elsewhere resumes, a changed dataset does not)
    and global batch; the optimizer's state only loads into the same optimizer and architecture
    (`SimCLRConfig`); the learning-rate schedule is set by the total and warmup steps. The learning rate
    itself may change (e.g. lowered after a non-finite loss).

    Returns:
        `dict` of JSON values, as read back from a checkpoint.
    """
    settings = {
        "global_batch_size": global_batch,
        "num_train_samples": len(dataset),
        "dataset_identity": dataset_identity(dataset),
        "optimizer": optimizer,
        "total_steps": total_steps,
        "warmup_steps": warmup_steps,
        **{name: getattr(config, name) for name in ARCHITECTURE_SETTINGS},
    }
    return json.loads(json.dumps(settings))


def check_resume_settings(checkpoint: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume from `checkpoint` unless this run's `settings` ([`resume_settings`]) are its own.

    A checkpoint written before checkpoints held their settings resumes with a warning: it comes from
    this package's earlier version, whose runs should stay resumable.

    Raises:
        ValueError: naming every setting that differs, with the checkpoint's value and this run's.
    """
    path = checkpoint / RESUME_SETTINGS_FILE
    if not path.is_file():
        warnings.warn(
            f"{checkpoint} has no {RESUME_SETTINGS_FILE} (it predates them), so this resume is unchecked: it "
            f"must use the batch size, data, optimizer, epochs and architecture of the run that wrote it.",
            stacklevel=2,
        )
        return
    saved = read_json(path)
    # A checkpoint of an earlier version recorded fewer settings (or named them otherwise).
    unrecorded = [name for name in settings if name not in saved]
    if unrecorded:
        warnings.warn(
            f"{checkpoint} predates the resume setting(s) {', '.join(unrecorded)}, so those are unchecked: the "
            f"resume must use the data and settings of the run that wrote it.",
            stacklevel=2,
        )
    differences = [
        f"{name}: {saved.get(name)!r} in the checkpoint, {value!r} now ({RESUME_SETTING_SOURCES.get(name, '--' + name)})"
        for name, value in settings.items()
        if name in saved and saved[name] != value
    ]
    if differences:
        raise UsageError(
            f"Cannot resume from {checkpoint}: this run's settings differ from those of the run that wrote it.\n  "
            + "\n  ".join(differences)
            + "\nResume with the checkpoint's settings, or start a new run (another --output_dir, or "
            "--overwrite_output_dir)."
        )


def save_checkpoint(
    accelerator: Accelerator,
    processes: Processes,
    output_dir: Path,
    step: int,
    keep: int,
    settings: dict[str, Any],
) -> None:
    """`save_state` and the run's `settings` into a temporary folder renamed into place, then drop all but the
    last `keep` (0: keep all). Each part is agreed by every process ([`together`], [`on_main`]): a full disk or
    a failure on one process stops them all, with its message, and no half-written checkpoint is left."""
    root = output_dir / CHECKPOINT_DIR
    final = root / checkpoint_name(step)
    staging = staging_for(final)
    on_main(processes, f"preparing {final}", lambda: begin_staging(final))
    try:
        with full_disk_named(final):
            together(processes, f"writing {final}", lambda: accelerator.save_state(str(staging)))
    except BaseException:  # a full disk, a signal: no half-written checkpoint fills the disk
        shutil.rmtree(staging, ignore_errors=True)
        raise
    on_main(
        processes,
        f"putting {final} in place",
        lambda: _finish_checkpoint(output_dir, staging, final, keep, settings),
    )


def _finish_checkpoint(
    output_dir: Path, staging: Path, final: Path, keep: int, settings: dict[str, Any]
) -> None:
    """The main process's part: the settings written, the checkpoint renamed into place, the oldest pruned."""
    write_json_atomically(staging / RESUME_SETTINGS_FILE, settings)
    finish_staging(staging, final)
    finished = list_checkpoints(output_dir)
    for old in finished[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def drop_checkpoints_from(processes: Processes, output_dir: Path, step: int) -> Path | None:
    """Remove checkpoints taken after `step` or more updates (the main process; every process waits); return
    the last one left, if any."""
    finished = list_checkpoints(output_dir)

    def drop() -> None:
        for path in finished:
            if checkpoint_step(path) >= step:
                shutil.rmtree(path, ignore_errors=True)

    on_main(processes, "removing the checkpoints a non-finite number spoiled", drop)
    kept = [path for path in finished if checkpoint_step(path) < step]
    return kept[-1] if kept else None
