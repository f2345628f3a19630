"""The semi-supervised table (fine-tune from SimCLR / from random init / linear probe, top-1 and top-3 per
label fraction), written from the runs' results files.

    python scripts/semi_supervised_table.py --probe_run runs/simclr-cifar10 \
        --finetune_runs runs/ft-simclr-1pct runs/ft-simclr-10pct runs/ft-random-1pct runs/ft-random-10pct

Writes semi_supervised.json and semi_supervised.md into --output_dir (default: the probe's folder, the
model folder, whose model card then carries the table and the fine-tuning results) and prints the table.
The logic lives in hf_simclr.semi_supervised.
"""

from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from hf_simclr.semi_supervised import format_semi_supervised_table, write_semi_supervised_table


@dataclass
class TableArguments:
    finetune_runs: list[str] = field(
        default_factory=list,
        metadata={"help": "Output folders of scripts/finetune.py (or their finetune_results.json)."},
    )
    probe_run: str | None = field(
        default=None,
        metadata={"help": "The probe's output folder (or its results.json): the linear-probe row."},
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "Where the table goes; default --probe_run."}
    )


def main() -> None:
    (args,) = HfArgumentParser(TableArguments).parse_args_into_dataclasses()
    output_dir = args.output_dir
    if output_dir is None:
        if args.probe_run is None:
            raise SystemExit("pass --output_dir (or --probe_run, whose folder is then the default).")
        probe = Path(args.probe_run)
        output_dir = probe if probe.is_dir() else probe.parent
    table = write_semi_supervised_table(args.finetune_runs, args.probe_run, output_dir)
    print(format_semi_supervised_table(table), end="")


if __name__ == "__main__":
    main()
