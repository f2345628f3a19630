"""Representations across training: the evaluation of each encoder snapshot of one run, on one scale.

Every snapshot (`--snapshot_epochs` of pretraining) is evaluated on the same decoded splits as
[`hf_simclr.evaluation.probe.run_linear_probe`] evaluates a model (kNN and the linear probe on h; label
fractions, baseline and z are left out: snapshots hold the encoder only), for the quality-vs-epoch curve,
one t-SNE panel per snapshot and the last snapshot's per-class scores.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..arguments import UsageError
from ..data import label_names
from ..devices import default_device, device_description
from ..folder_format import (
    FEATURE_CACHE_DIR,
    SNAPSHOT_CURVE_FILE,
    SNAPSHOT_DIR,
    SNAPSHOT_GLOB,
    SNAPSHOT_PLOT_FILE,
    SNAPSHOT_TABLE_FILE,
    SNAPSHOT_TSNE_FILE,
    TRAINING_ARGS_FILE,
    snapshot_name,
    write_text_atomically,
)
from ..folder_hold import holds_folders
from ..model_folder import read_json
from ..reports.plots import plot_quality_curve, plot_tsne_panels
from ..reports.tables import format_snapshot_table
from .arguments import LinearProbeArguments, SnapshotArguments
from .features import load_frozen_model
from .linear import evaluate_representations
from .metrics import classification_report_dict
from .probe import (
    load_labeled_splits,
    prepare_output_dir,
    probe_options,
    resolve_output_dir,
    split_features,
    write_results,
)

CURVE_METRICS = ("linear_top1", "linear_top3", "linear_top5", "knn_top1", "weight_decay")


def find_snapshots(folders: Sequence[str | Path]) -> list[tuple[int, Path]]:
    """(epoch, folder) of each snapshot, by epoch: a pretraining run folder stands for all of its
    `snapshots/epoch_N`, a snapshot folder for itself (its epoch read from `training_args.json`).

    Raises:
        ValueError: for a folder that is neither, or two snapshots of the same epoch.
    """
    found: list[tuple[int, Path]] = []
    for folder in map(Path, folders):
        snapshots = (
            sorted((folder / SNAPSHOT_DIR).glob(SNAPSHOT_GLOB)) if (folder / SNAPSHOT_DIR).is_dir() else []
        )
        if snapshots:
            found += [(int(path.name.split("_")[1]), path) for path in snapshots if path.name[6:].isdigit()]
            continue
        record = folder / TRAINING_ARGS_FILE
        epoch = (read_json(record) or {}).get("snapshot_epoch")
        if epoch is None:
            raise UsageError(
                f"{folder} is neither a pretraining folder with snapshots/epoch_N (pretrain with "
                f"--snapshot_epochs 1,25,50,100) nor a snapshot folder."
            )
        found.append((int(epoch), folder))
    epochs = [epoch for epoch, _ in found]
    if len(set(epochs)) != len(epochs):
        raise UsageError(f"two snapshots of the same epoch among {[str(path) for _, path in found]}.")
    return sorted(found)


@holds_folders  # the output folder is this run's until it returns or raises
def run_snapshot_curve(
    args: LinearProbeArguments, snapshots: Sequence[str | Path], tsne_points: int = 2000
) -> dict[str, Any]:
    """Quality against pretraining epoch: kNN and the linear probe on h of each snapshot, t-SNE panels.

    Writes into the output folder (`--output_dir`, default the run folder `args.model_name_or_path`):
    `snapshot_curve.json`, `snapshot_curve.png` (kNN@k and linear top-1 per epoch), `snapshot_tsne.png`
    (one panel per snapshot, the same images, the same axes) and `snapshot_curve.md` (the curve and the
    last snapshot's per-class precision, recall and F1).

    Args:
        args ([`LinearProbeArguments`]): the data and probe settings (as for one model).
        snapshots (`Sequence[str | Path]`): run folders and/or snapshot folders (see [`find_snapshots`]).
        tsne_points (`int`, defaults to 2000): evaluation images per t-SNE panel.

    Returns:
        The dict written to `snapshot_curve.json`: `rows` (`epoch`, `linear_top1`, `linear_top3`,
        `linear_top5`, `knn_top1`, `snapshot`), `per_class` of the last, `class_names`, `dataset`, ...
    """
    started = time.perf_counter()
    found = find_snapshots(snapshots)
    output_dir = resolve_output_dir(args)
    prepare_output_dir(args, output_dir, output_dir / FEATURE_CACHE_DIR)
    device = torch.device(args.device) if args.device else default_device()
    splits, rows, panels, last = None, [], [], None
    for epoch, folder in found:
        model = load_frozen_model(folder)
        if splits is None:
            splits = load_labeled_splits(args, model.view)
            names = label_names(splits["train"].dataset, *(split.labels for split in splits.values()))
        features = split_features(
            args, model, splits, output_dir / FEATURE_CACHE_DIR, snapshot_name(epoch), device
        )
        train, evaluation = features["train"], features["eval"]
        metrics, probe = evaluate_representations(
            train["h"],
            train["y"],
            evaluation["h"],
            evaluation["y"],
            len(names),
            **probe_options(args, device),
            progress=f"epoch {epoch}: linear probe",
        )
        rows.append({"epoch": epoch, **{key: metrics[key] for key in CURVE_METRICS}, "snapshot": str(folder)})
        panels.append((f"epoch {epoch}", evaluation["h"]))
        last = (probe, evaluation)
    per_class, confusion = classification_report_dict(
        last[0].logits(last[1]["h"].to(device)), last[1]["y"], names
    )
    curve = {
        "rows": rows,
        "per_class": per_class,
        "per_class_epoch": rows[-1]["epoch"],
        "confusion_matrix": confusion,
        "class_names": names,
        "dataset": args.dataset_record(),
        "split_sizes": {name: len(split.dataset) for name, split in splits.items()},
        "seed": args.seed,
        "device": device_description(device=device),
        "plots": {"curve": SNAPSHOT_PLOT_FILE, "tsne": SNAPSHOT_TSNE_FILE},
    }
    plot_quality_curve(rows, output_dir / SNAPSHOT_PLOT_FILE)
    plot_tsne_panels(panels, last[1]["y"], names, output_dir / SNAPSHOT_TSNE_FILE, tsne_points, args.seed)
    curve["wall_time_seconds"] = round(time.perf_counter() - started, 1)
    write_results(curve, output_dir, SNAPSHOT_CURVE_FILE)
    write_text_atomically(output_dir / SNAPSHOT_TABLE_FILE, format_snapshot_table(curve))
    return curve


def snapshot_curve(args: LinearProbeArguments, snapshot_args: SnapshotArguments) -> dict[str, Any]:
    """`scripts/snapshot_curve.py`: [`run_snapshot_curve`] of `--snapshots`, by default every snapshot of the
    run folder `--model_name_or_path`, with the folder it wrote into (`output_dir`, for the script's report)."""
    snapshots = snapshot_args.snapshots or [args.model_name_or_path]
    curve = run_snapshot_curve(args, snapshots, snapshot_args.tsne_points)
    return {**curve, "output_dir": str(resolve_output_dir(args))}
