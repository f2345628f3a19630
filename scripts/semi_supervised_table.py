"""The semi-supervised table (fine-tune from SimCLR / from random init / linear probe, top-1 and top-3 per
label fraction), written from the runs' results files.

    python scripts/semi_supervised_table.py --probe_run runs/simclr-cifar10 \
        --finetune_runs runs/ft-simclr-1pct runs/ft-simclr-10pct runs/ft-random-1pct runs/ft-random-10pct

Writes semi_supervised.json and semi_supervised.md into --output_dir (default: the probe's folder, the
model folder, whose model card then carries the table and the fine-tuning results) and prints the table.
The logic lives in hf_simclr.reports.command.
"""

from hf_simclr.reports.command import TABLE


def main() -> None:
    TABLE.main()


if __name__ == "__main__":
    main()
