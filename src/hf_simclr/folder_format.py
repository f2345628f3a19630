"""Every file and folder name the package writes or reads, and the one way it writes a file whole.

Torch-free and import-light: every floor above may import it. A file the package writes goes through
[`write_atomically`] (a unique temporary file beside the target, renamed onto it with `os.replace`), so that a
killed or failing write leaves the old file, or none, and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------------------------
# File names
# ----------------------------------------------------------------------------------------------

# The model folder (what AutoModel, AutoImageProcessor and pipeline read).
CONFIG_FILE = "config.json"
IMAGE_PROCESSOR_FILE = "preprocessor_config.json"
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")  # one file, or sharded
WEIGHTS_FILE = WEIGHTS_FILES[0]
WEIGHTS_SUFFIX = ".safetensors"
SHARD_PATTERN = r"model-\d+-of-\d+\.safetensors"  # the shards a sharded save writes
LEGACY_WEIGHTS_FILE = "pytorch_model.bin"  # what save_state writes without safetensors
TRAINING_ARGS_FILE = "training_args.json"
MODEL_CARD_FILE = "README.md"
MODEL_CARD_TEMPLATE_FILE = "model_card_template.md"  # beside reports/card.py
TIMM_SUBFOLDER = "timm"  # the timm export, inside the model folder

# Pretraining's run files.
CHECKPOINT_DIR = "checkpoints"
SNAPSHOT_DIR = "snapshots"  # encoder-only copies at chosen epochs, never pruned
LOG_HISTORY_FILE = "log_history.jsonl"
# What a run set aside rather than delete: a start interrupted before its first checkpoint, the checkpoints,
# snapshots and log lines after the one a resume went back to (`abandoned/<when>/`, never read by a run).
ABANDONED_DIR = "abandoned"
TRACKER_PROJECT = "simclr"  # trackers that log to files (tensorboard) write into <output_dir>/simclr/
CHECKPOINT_FILES = (WEIGHTS_FILE, "optimizer.bin")  # what a complete checkpoint holds besides the settings
RESUME_SETTINGS_FILE = "resume_settings.json"
CHECKPOINT_PATTERN = r"step_\d+"
SNAPSHOT_GLOB = "epoch_*"
# Fine-tuning's Trainer checkpoints.
TRAINER_STATE_FILE = "trainer_state.json"
# A dataset saved with save_to_disk.
DATASET_FILES = ("dataset_dict.json", "state.json")

# The evaluation's records and pictures.
RESULTS_FILE = "results.json"
FEATURE_CACHE_DIR = "feature_cache"
TSNE_FILE = "tsne.png"
NEIGHBORS_FILE = "nearest_neighbors.png"
CONFUSION_FILE = "confusion_matrix.png"
CURVES_FILE = "training_curves.png"
SNAPSHOT_CURVE_FILE = "snapshot_curve.json"
SNAPSHOT_TABLE_FILE = "snapshot_curve.md"
SNAPSHOT_PLOT_FILE = "snapshot_curve.png"
SNAPSHOT_TSNE_FILE = "snapshot_tsne.png"

# Fine-tuning and the table that compares it with the probe.
FINETUNE_RESULTS_FILE = "finetune_results.json"
SEMI_SUPERVISED_FILE = "semi_supervised.json"
SEMI_SUPERVISED_TABLE = "semi_supervised.md"
# Distillation: the teacher's logits on the unlabeled split, computed once (`--teacher_logits cached`).
TEACHER_LOGITS_DIR = "teacher_logits"  # in the output folder unless --teacher_logits_cache_dir
CHAIN_DIR = "chain"  # the runner's fine-tuning and distillation runs of a variant (grid `chain`)

# Kept in results/ folders: the commands' wall times and `gpu` (the experiment runner writes it too).
WALL_TIMES_FILE = "wall_times.json"

# The experiment runner's folders and the report commands' records.
EXPERIMENT_FILE = "experiment.json"  # what the variant was run with: the skip-or-refuse check reads it
SUMMARY_JSON = "summary.json"
SUMMARY_MARKDOWN = "summary.md"
DECODED_SUBFOLDER = "decoded"  # the runner's and the training benchmark's shared decoded-image cache
DECODED_CACHE_FOLDER = (
    "hf_simclr_decoded"  # in the datasets cache: splits decoded without --decoded_cache_dir
)
PUBLISHED_FILE = "published.yaml"

# The training benchmark's work folder: the upsampled 96 px copy, and one run folder per case and views.
BENCHMARK_STL10_FOLDER = "stl10-like"

# One run per folder (folder_hold.hold_folder): the lock, and who holds it.
FOLDER_LOCK_FILE = ".hf_simclr.lock"
FOLDER_HOLDER_FILE = ".hf_simclr.holder.json"
# Staging: a folder is built under STAGING_PREFIX + its name, beside it, and renamed into place.
STAGING_PREFIX = ".tmp-"
REPLACED_PREFIX = ".replaced-"  # a finished folder being replaced by its new build (finish_staging)
MERGE_STAGING = ".tmp-save"  # inside a folder whose files are replaced one by one


def checkpoint_name(step: int) -> str:
    """The folder of the checkpoint taken after `step` updates."""
    return f"step_{step}"


def snapshot_name(epoch: int) -> str:
    """The folder of the snapshot taken after `epoch` epochs (also its feature-cache tag)."""
    return f"epoch_{epoch}"


def feature_cache_file(tag: str, split: str) -> str:
    """The cached frozen features of one split for one model (`tag`)."""
    return f"features_{tag}_{split}{WEIGHTS_SUFFIX}"


def teacher_logits_file(key_digest: str, split: str) -> str:
    """The cached logits of one teacher on one split of one dataset at one view (`key_digest` names all four)."""
    return f"logits_{split}_{key_digest}{WEIGHTS_SUFFIX}"


def decoded_cache_name(fingerprint: str, rows: int, image_size: int, decoder: int) -> str:
    """The decoded-image cache of a dataset split (its fingerprint and size) at one image size, by one version
    of the decoder (a cache of another version, whose pixels may differ, is another file)."""
    return f"decoded-{fingerprint}-{rows}x{image_size}px-v{decoder}.npy"


def benchmark_run_folder(case: str, augment_on: str) -> str:
    """The training benchmark's run of `case` with views made as `augment_on` says (`cpu`, `gpu-device`: the split
    kept on the device, `gpu-host`: streamed from the host)."""
    return f"{case}-{augment_on}"


def card_file(name: str) -> str:
    """A model card kept under its variant's `name` (the publish command's cards folder)."""
    return f"{name}.md"


# ----------------------------------------------------------------------------------------------
# Writing files whole
# ----------------------------------------------------------------------------------------------


class NoSpaceLeft(OSError):
    """A write failed because its disk is full (errno ENOSPC); the message names the path and the free space."""


# Below this much free space after a failed write, the disk is taken to be what failed it: libraries name it
# their own way (torch: "unexpected pos", safetensors: "os error 28"), or not at all.
FULL_DISK_BYTES = 1 << 20


@contextlib.contextmanager
def full_disk_named(path: str | Path) -> Iterator[None]:
    """Turn an error of a write under `path` whose disk is full into [`NoSpaceLeft`], naming `path`."""
    try:
        yield
    except NoSpaceLeft:
        raise
    except Exception as error:
        free = free_bytes(Path(path))
        full = (isinstance(error, OSError) and error.errno == errno.ENOSPC) or (
            free is not None and free < FULL_DISK_BYTES
        )
        if not full:
            raise
        raise NoSpaceLeft(
            errno.ENOSPC,
            f"no space left on device: {path} could not be written ({(free or 0) / 1e6:.1f} MB free on its "
            f"disk; nothing half-written was kept). Free some space, or write to another disk",
        ) from error


def nearest_existing(path: Path) -> Path:
    """`path`, or its nearest parent that exists (where a new folder will be created)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int | None:
    """Free bytes on the disk of `path` (or of its nearest existing parent); None when it cannot be told."""
    try:
        return shutil.disk_usage(nearest_existing(path)).free
    except OSError:
        return None


def write_atomically(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(temporary)` on a unique temporary file beside `path`, then rename it onto `path`.

    If `write` raises, the temporary file is removed and `path` keeps what it held (or stays absent); a
    write that failed on a full disk raises [`NoSpaceLeft`]. The file gets the mode of a plain `open()`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_beside(path)
    try:
        with full_disk_named(path):
            write(temporary)
        give_plain_mode(temporary)  # mkstemp's file is private (0600); the file written is not
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return path


def temporary_beside(path: Path) -> Path:
    """A new, empty, uniquely named temporary file in `path`'s folder, `.<name>.<random>.tmp`: what an atomic
    write of `path` fills before renaming it onto `path`; no reader takes that name for `path`."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    return Path(name)


def plain_mode(directory: bool = False) -> int:
    """The mode a plain `open()` (or `mkdir`) gives under this process's umask: 0644 (0755) under umask 022."""
    umask = None
    with contextlib.suppress(OSError, ValueError):  # Linux says it without changing it
        status = Path("/proc/self/status").read_text()
        umask = int(status.split("Umask:", 1)[1].split()[0], 8)
    if umask is None:
        umask = os.umask(0)
        os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def give_plain_mode(path: Path) -> None:
    """Give `path` (a file, or a folder and everything in it) the modes of [`plain_mode`]: libraries that
    write through private temporary files (safetensors, `mkstemp`) leave 0600, which a colleague or a
    serving process under another user cannot read."""
    if path.is_dir():
        for inner in path.rglob("*"):
            os.chmod(inner, plain_mode(inner.is_dir()))
    os.chmod(path, plain_mode(path.is_dir()))


def write_text_atomically(path: str | Path, text: str) -> Path:
    """[`write_atomically`] of `text` (UTF-8)."""
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_bytes_atomically(path: str | Path, content: bytes) -> Path:
    """[`write_atomically`] of `content`."""
    return write_atomically(path, lambda temporary: temporary.write_bytes(content))


def write_json_atomically(path: str | Path, content: Any) -> Path:
    """[`write_text_atomically`] of `content` as indented JSON (non-JSON values written as strings)."""
    return write_text_atomically(path, json.dumps(content, indent=2, default=str) + "\n")


# ----------------------------------------------------------------------------------------------
# Building folders whole
# ----------------------------------------------------------------------------------------------


def staging_for(final: str | Path) -> Path:
    """The one staging folder of `final`: beside it, so that a build killed half-way is cleared by the next."""
    final = Path(final)
    return final.parent / f"{STAGING_PREFIX}{final.name}"


def begin_staging(final: str | Path) -> Path:
    """Clear a stale staging folder of `final` and create it empty; return it."""
    staging = staging_for(final)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def finish_staging(staging: Path, final: str | Path) -> Path:
    """Replace `final` (if any) with the complete `staging` folder: the old one is renamed aside first (to
    `.replaced-<name>`), the new one renamed into place, then the old one removed, so that a stop at any
    moment leaves a complete `final` or, between the two renames, both complete folders under names a reader
    knows (a folder cannot be renamed over another that holds files)."""
    final = Path(final)
    give_plain_mode(staging)
    replaced = final.parent / f"{REPLACED_PREFIX}{final.name}"
    shutil.rmtree(replaced, ignore_errors=True)
    if final.exists():
        os.replace(final, replaced)
    os.replace(staging, final)
    shutil.rmtree(replaced, ignore_errors=True)
    return final


@contextlib.contextmanager
def staged_folder(final: str | Path) -> Iterator[Path]:
    """Build `final` in its staging folder (yielded), renamed into place when the block ends without error.

    A block that raises leaves `final` as it was and no staging folder behind.
    """
    staging = begin_staging(final)
    try:
        with full_disk_named(final):
            yield staging
        finish_staging(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into_place(path: Path, target: Path) -> None:
    """`os.replace` of one finished file onto its name (a function of its own: tests interrupt it)."""
    os.replace(path, target)


@contextlib.contextmanager
def staged_files(folder: str | Path) -> Iterator[Path]:
    """Write files into a staging folder inside `folder` (yielded), then move each onto its name in `folder`.

    The other files of `folder` are left alone; a block that raises moves nothing.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / MERGE_STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        with full_disk_named(folder):
            yield staging
        give_plain_mode(staging)
        for path in staging.iterdir():
            move_into_place(path, folder / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
