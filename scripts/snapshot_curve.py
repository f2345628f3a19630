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

from hf_simclr.evaluation.command import SNAPSHOT_CURVE


def main() -> None:
    SNAPSHOT_CURVE.main()


if __name__ == "__main__":
    main()
