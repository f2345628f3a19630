"""Run a grid of SimCLR recipe variants (pretrain + evaluate on h and z) and write the results table.

    python scripts/run_experiments.py configs/grids/ablations.yaml --dataset_name .data/cifar10 \
        --results_dir results/ablations --work_dir runs/ablations --time_budget_minutes 8
    # a CPU check of the same grid: 1 epoch on a slice, into a scratch folder
    python scripts/run_experiments.py configs/grids/ablations.yaml --dataset_name ../shared/datasets/cifar10 \
        --results_dir outputs/check --work_dir outputs/check-runs \
        --override num_train_epochs=1 max_train_samples=512 max_eval_samples=256 torch_compile=false

Variants whose results are already in --results_dir (with the same settings) are skipped; results of
other settings are refused, never replaced. The table (`summary.md`, `summary.json` in --results_dir)
is written from the results files. The logic lives in hf_simclr.experiments.runner; `--help` lists every argument.
"""

from hf_simclr.experiments.command import RUN_EXPERIMENTS


def main() -> None:
    RUN_EXPERIMENTS.main()


if __name__ == "__main__":
    main()
