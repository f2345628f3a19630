"""Throughput benchmarks; each --mode times one part of the system and writes a JSON report.

    python scripts/benchmark.py --mode data --dataset_name ../shared/datasets/cifar10 \\
        --output_json outputs/benchmark-data.json

Modes:
    data: two-view images per second from the CPU data pipeline (decode + augmentation, no model),
        per DataLoader worker count, at 32px (CIFAR-10) and 96px (STL-10 sized).
    training: views per second of the model alone (random batches on the GPU, compiled) and of real
        pretraining steps fed by the GPU pipeline and by the CPU pipeline; peak GPU memory. GPU only.

All logic lives in `hf_simclr.benchmark`.
"""

import argparse
import dataclasses
import json
import os
import sys
from datetime import date
from pathlib import Path

from hf_simclr.benchmark import (
    TRAINING_CASES,
    benchmark_data_pipeline,
    benchmark_training,
    machine_description,
)


def run_data(args: argparse.Namespace) -> dict:
    results = benchmark_data_pipeline(
        args.dataset_name,
        split=args.split,
        worker_counts=tuple(args.num_workers),
        batch_size=args.batch_size,
        cifar_batches=args.cifar_batches,
        stl10_batches=args.stl10_batches,
        stl10_samples=args.stl10_samples,
    )
    for result in results:
        print(
            f"{result.case:<38} workers={result.num_workers}  "
            f"{result.two_view_images_per_s:8.1f} two-view images/s  {result.views_per_s:8.1f} views/s  "
            f"{result.two_view_images_per_s_per_worker:7.1f} per worker  "
            f"(other processes: {100 * result.other_processes_cpu_share:.0f}% of the CPU)"
        )
    return {"results": [dataclasses.asdict(result) for result in results]}


def run_training(args: argparse.Namespace) -> dict:
    import torch

    cases = tuple(case for case in TRAINING_CASES if not args.cases or case.name in args.cases)
    results = benchmark_training(args.dataset_name, str(args.work_dir), cases, cpu_workers=args.cpu_workers)
    return {"gpu": torch.cuda.get_device_name(), "results": results}


MODES = {"data": run_data, "training": run_training}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=sorted(MODES), required=True, help="What to time.")
    parser.add_argument("--output_json", type=Path, help="Write the report here (printed only when unset).")
    data = parser.add_argument_group("--mode data")
    data.add_argument(
        "--dataset_name",
        default="uoft-cs/cifar10",
        help="CIFAR-10: a Hub name or a local copy (directory of parquet files, save_to_disk folder).",
    )
    data.add_argument("--split", default="train")
    data.add_argument(
        "--num_workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts to time."
    )
    data.add_argument("--batch_size", type=int, default=256)
    data.add_argument(
        "--cifar_batches", type=int, default=32, help="Batches timed per 32px setting (after 2 warm-up)."
    )
    data.add_argument(
        "--stl10_batches", type=int, default=12, help="Batches timed per 96px setting (after 2 warm-up)."
    )
    data.add_argument(
        "--stl10_samples", type=int, default=4096, help="CIFAR-10 images upsampled to 96px for that case."
    )
    training = parser.add_argument_group("--mode training (needs a CUDA GPU)")
    training.add_argument("--work_dir", type=Path, default=Path("outputs/benchmark-training"))
    training.add_argument("--cases", nargs="*", help=f"Subset of {[case.name for case in TRAINING_CASES]}.")
    training.add_argument("--cpu_workers", type=int, help="CPU pipeline workers (default: all cores).")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    report = {
        "mode": args.mode,
        "date": date.today().isoformat(),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "arguments": {
            key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
        },
        "machine": machine_description(),
        # Other processes slow every number down: a load near 0 before the run means a quiet machine.
        "load_average_1min_before": os.getloadavg()[0],
    }
    report.update(MODES[args.mode](args))
    report["load_average_1min_after"] = os.getloadavg()[0]
    if args.output_json is not None:
        args.output_json.parent.mkdir(parents=True, exist_ok=True)
        args.output_json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.output_json}")


if __name__ == "__main__":
    main()
