"""Representations across training: kNN and the linear probe for each encoder snapshot of a run.

    python scripts/pretrain.py configs/cifar10-resnet18-reference.yaml --output_dir runs/c10 \
        --snapshot_epochs 1,25,50,100
    python scripts/snapshot_curve.py --model_name_or_path runs/c10 --dataset_name uoft-cs/cifar10

Writes snapshot_curve.json, snapshot_curve.png (accuracy per epoch), snapshot_tsne.png (one t-SNE panel
per snapshot, the same images on the same axes) and snapshot_curve.md (the curve and the last snapshot's
per-class precision/recall/F1) into --output_dir (default: the run folder). The probe arguments are those
of scripts/linear_probe.py; label fractions, the baseline and z do not apply (snapshots hold the encoder
only). The logic lives in hf_simclr.evaluation.snapshots.run_snapshot_curve.
"""

from transformers import HfArgumentParser

from hf_simclr.evaluation.arguments import LinearProbeArguments, SnapshotArguments
from hf_simclr.evaluation.snapshots import run_snapshot_curve


def main() -> None:
    args, snapshot_args = HfArgumentParser(
        (LinearProbeArguments, SnapshotArguments)
    ).parse_args_into_dataclasses()
    curve = run_snapshot_curve(
        args, snapshot_args.snapshots or [args.model_name_or_path], snapshot_args.tsne_points
    )
    for row in curve["rows"]:
        knn = ", ".join(f"kNN@{k} {100 * value:.2f}" for k, value in row["knn_top1"].items())
        print(f"epoch {row['epoch']:>4}: linear {100 * row['linear_top1']:.2f}, {knn}")


if __name__ == "__main__":
    main()
