"""Judge a pretrained SimCLR encoder: linear probe, kNN, label fractions and a random-init baseline.

    python scripts/linear_probe.py --model_name_or_path runs/cifar10 \
        --dataset_name ../shared/datasets/cifar10 --plots

Writes results.json (and with --plots the PNG pictures) into --output_dir, which defaults to the
model folder; there it also writes the README.md model card. Features are cached in
<output_dir>/feature_cache/, so a second run with other probe settings skips the encoder.
The logic lives in hf_simclr.evaluation.probe.run_linear_probe.
"""

from hf_simclr.evaluation.command import LINEAR_PROBE


def main() -> None:
    LINEAR_PROBE.main()


if __name__ == "__main__":
    main()
