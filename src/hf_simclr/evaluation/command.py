"""`scripts/linear_probe.py`'s and `scripts/snapshot_curve.py`'s command lines: the evaluation's arguments
([`hf_simclr.evaluation.arguments`]) read as one [`Command`] each, the flags people bring from Trainer and
other probes answered, and what the snapshot curve says at the end."""

from __future__ import annotations

from typing import Any

from ..command import Command
from ..folder_format import FEATURE_CACHE_DIR, SNAPSHOT_CURVE_FILE, SNAPSHOT_TABLE_FILE
from .arguments import LinearProbeArguments, ProbeArguments, SnapshotArguments

_BATCH = "give --batch_size N (images per forward pass of the feature extraction)"


_PROBE_FIT = (
    "the linear probe is scikit-learn's logistic regression on frozen features: --weight_decays (its grid of "
    "L2 penalties, picked on a held-out split) and --max_iter (L-BFGS iterations)"
)


_FP32 = "features are extracted in fp32 on --device (cuda when there is one)"


# Flags of Trainer, the accelerate examples and solo-learn/lightly's probes, with this evaluation's way.
EVALUATION_ELSEWHERE_FLAGS = (
    ("per_device_eval_batch_size", _BATCH),
    ("per_device_train_batch_size", _BATCH),
    ("eval_batch_size", _BATCH),
    ("model", "give --model_name_or_path (a pretraining's output folder or a Hub id)"),
    ("checkpoint", "give --model_name_or_path (a pretraining's output folder or a Hub id)"),
    ("pretrained", "give --model_name_or_path (a pretraining's output folder or a Hub id)"),
    ("num_workers", "features come from the split decoded once to uint8 (--decoded_cache_dir to keep it)"),
    (
        "dataloader_num_workers",
        "features come from the split decoded once to uint8 (--decoded_cache_dir to keep it)",
    ),
    ("bf16", _FP32),
    ("fp16", _FP32),
    ("mixed_precision", _FP32),
    ("lr", _PROBE_FIT),
    ("learning_rate", _PROBE_FIT),
    ("epochs", _PROBE_FIT),
    ("num_train_epochs", _PROBE_FIT),
    ("weight_decay", _PROBE_FIT),
    ("k", "give --knn_k K [K ...] (neighbour counts of the kNN classifier)"),
    (
        "train_dir",
        "give --dataset_name <the folder> (an imagefolder, parquet files or a save_to_disk folder)",
    ),
    ("image_column_name", "give --image_column NAME"),
    ("label_column_name", "give --label_column NAME"),
)


def format_snapshot_report(curve: dict[str, Any]) -> str:
    """What `scripts/snapshot_curve.py` prints at the end: a line per snapshot, then the files it wrote."""
    from ..reports.tables import format_snapshot_rows

    written = [SNAPSHOT_CURVE_FILE, SNAPSHOT_TABLE_FILE, *curve["plots"].values()]
    lines = [format_snapshot_rows(curve), "", f"Wrote into {curve['output_dir']}/:"]
    lines += [f"  {name}" for name in written]
    lines.append(
        f"  {FEATURE_CACHE_DIR}/ (each snapshot's features, reused by the next run on the same data)"
    )
    return "\n".join(lines)


_SNAPSHOTS = (
    "the curve reads the snapshots pretraining kept (at the epochs pretrain.py was given), every one of "
    "--model_name_or_path by default; --snapshots FOLDER [FOLDER ...] picks some (snapshots/epoch_N)"
)


# The snapshot curve's: the evaluation's, and how its snapshots are chosen.
SNAPSHOT_ELSEWHERE_FLAGS = tuple(
    {
        **dict(EVALUATION_ELSEWHERE_FLAGS),
        "snapshot_epochs": _SNAPSHOTS,
        "epochs": _SNAPSHOTS,
        "checkpoints": _SNAPSHOTS + ": checkpoints/ hold the optimizer's state, not a model folder",
    }.items()
)


# `scripts/linear_probe.py` and `scripts/snapshot_curve.py`.
LINEAR_PROBE = Command(
    "linear_probe.py",
    (LinearProbeArguments,),
    "hf_simclr.evaluation.probe:run_linear_probe",
    report="hf_simclr.reports.tables:format_probe_report",
    interrupted="features already extracted are cached (feature_cache/): run the same command again.",
    known_elsewhere=EVALUATION_ELSEWHERE_FLAGS,
    required_by_checks=("dataset_name",),
)


SNAPSHOT_CURVE = Command(
    "snapshot_curve.py",
    (ProbeArguments, SnapshotArguments),
    "hf_simclr.evaluation.snapshots:snapshot_curve",
    report="hf_simclr.evaluation.command:format_snapshot_report",
    interrupted="features already extracted are cached (feature_cache/): run the same command again.",
    known_elsewhere=SNAPSHOT_ELSEWHERE_FLAGS,
    required_by_checks=("dataset_name",),
)
