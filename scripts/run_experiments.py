"""Run a grid of SimCLR recipe variants (pretrain + evaluate on h and z) and write the results table.

    python scripts/run_experiments.py configs/grids/ablations.yaml --dataset_name .data/cifar10 \
        --results_dir results/ablations --work_dir runs/ablations --time_budget_minutes 8
    # a CPU check of the same grid: 1 epoch on a slice, into a scratch folder
    python scripts/run_experiments.py configs/grids/ablations.yaml --dataset_name ../shared/datasets/cifar10 \
        --results_dir outputs/check --work_dir outputs/check-runs \
        --override num_train_epochs=1 max_train_samples=512 max_eval_samples=256 torch_compile=false

Variants whose results are already in --results_dir (with the same settings) are skipped; results of
other settings are refused, never replaced. The table (`summary.md`, `summary.json` in --results_dir)
is written from the results files. The logic lives in hf_simclr.experiments.
"""

import argparse

from hf_simclr.experiments import command_string, load_grid, parse_overrides, run_grid, write_summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("grid", help="The grid file (YAML): base recipe, overrides, variants, sections.")
    parser.add_argument(
        "--results_dir", required=True, help="Results of each variant and the table (no weights)."
    )
    parser.add_argument(
        "--work_dir", default="runs/experiments", help="Model folders (weights) and decoded data."
    )
    parser.add_argument("--dataset_name", help="Data for every variant (e.g. a local CIFAR-10 copy).")
    parser.add_argument("--variants", nargs="+", help="Run only these variants (default: all).")
    parser.add_argument(
        "--override",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="Settings for every variant, e.g. num_train_epochs=1 max_train_samples=512.",
    )
    parser.add_argument(
        "--time_budget_minutes",
        type=float,
        help="Do not start a variant that would end after this many minutes (estimated).",
    )
    parser.add_argument("--table", help="Also write the markdown table here (e.g. results/ablations.md).")
    parser.add_argument(
        "--summary_only", action="store_true", help="Rewrite the table from the results only."
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    grid = load_grid(args.grid)
    if args.summary_only:
        write_summary(grid, args.results_dir, args.table)
        return
    overrides = parse_overrides(args.override)
    if args.dataset_name:
        overrides["dataset_name"] = args.dataset_name
    report = run_grid(
        grid,
        args.results_dir,
        args.work_dir,
        overrides,
        args.variants,
        args.time_budget_minutes,
        command=command_string(),
        table=args.table,
    )
    print(f"ran {report.ran}; skipped (results exist) {report.skipped}; not started {report.not_started}")
    print(f"table: {args.table or args.results_dir + '/summary.md'}")


if __name__ == "__main__":
    main()
