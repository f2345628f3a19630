"""The run of `scripts/benchmark.py`: one mode timed, printed row by row, written as one JSON report."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path

from ..folder_format import write_text_atomically
from .arguments import TRAINING_CASES, BenchmarkArguments
from .data_pipeline import benchmark_data_pipeline, machine_description
from .decoding import benchmark_decoding
from .host_gather import benchmark_host_gather
from .memory import benchmark_memory
from .objectives import benchmark_objectives
from .training import benchmark_device, benchmark_training, device_name


def run_benchmark(args: BenchmarkArguments) -> dict:
    """Time what `args.mode` names; print each row; write the report (machine, command, date) as JSON.

    Returns:
        The report.
    """
    report = {
        "mode": args.mode,
        "date": date.today().isoformat(),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "arguments": asdict(args),
        "machine": machine_description(),
        # Other processes slow every number down: a load near 0 before the run means a quiet machine.
        "load_average_1min_before": os.getloadavg()[0],
    }
    timed = {
        "data": _time_data,
        "training": _time_training,
        "memory": _time_memory,
        "gather": lambda args: benchmark_host_gather(),
        "decode": _time_decode,
        "objectives": _time_objectives,
    }[args.mode]
    report.update(timed(args))
    report["load_average_1min_after"] = os.getloadavg()[0]
    if args.output_json is not None:
        output = write_text_atomically(args.output_json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {output}")
    return report


def _time_data(args: BenchmarkArguments) -> dict:
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
    return {"results": [asdict(result) for result in results]}


def _time_training(args: BenchmarkArguments) -> dict:
    cases = tuple(case for case in TRAINING_CASES if not args.cases or case.name in args.cases)
    results = benchmark_training(args.dataset_name, args.work_dir, cases, cpu_workers=args.cpu_workers)
    return {"device": device_name(benchmark_device()), "results": results}


def _time_memory(args: BenchmarkArguments) -> dict:
    return benchmark_memory(
        args.memory_settings, args.memory_backbone, args.memory_image_size, args.memory_steps
    )


def _time_objectives(args: BenchmarkArguments) -> dict:
    return benchmark_objectives(
        args.objective_batches,
        args.objective_step_chunk,
        args.memory_backbone,
        args.memory_image_size,
        args.objective_repeats,
        model_steps=1,
    )


def format_objectives_table(report: dict) -> str:
    """The Markdown table of a `--mode objectives` report: each objective's loss time, its extra over NT-Xent's
    and that extra against the ResNet step at the batch (docs/benchmarks.md holds this text)."""
    lines = [
        "| batch | objective | loss, forward + backward (ms) | extra over nt_xent (ms) | ResNet step (s) | extra / step |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        extra = "-" if row["objective"] == "nt_xent" else f"{1000 * row['extra_seconds_over_nt_xent']:+.2f}"
        share = "-" if row["objective"] == "nt_xent" else f"{100 * row['extra_fraction_of_step']:+.3f}%"
        lines.append(
            f"| {row['batch']:,} | `{row['objective']}` | {1000 * row['loss_seconds']:.2f} | {extra} "
            f"| {row['step_seconds']:.1f} | {share} |"
        )
    return "\n".join(lines)


def _time_decode(args: BenchmarkArguments) -> dict:
    return benchmark_decoding(
        args.dataset_name,
        args.split,
        args.decode_workers,
        args.decode_cifar_samples,
        args.decode_photo_samples,
    )


def format_decoding_table(report: dict) -> str:
    """The Markdown table of a `--mode decode` report: images per second of each case and worker count, and
    the speed-up over one worker (docs/benchmarks.md holds this text)."""
    rows = report["results"]
    alone = {row["case"]: row["images_per_s"] for row in rows if row["workers"] == 1}
    lines = ["| case | images | workers | images/s | vs 1 worker |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        one = alone.get(row["case"])
        ratio = f"{row['images_per_s'] / one:.2f}x" if one and row["workers"] != 1 else "-"
        lines.append(
            f"| {row['case']} | {row['images']:,} | {row['workers']} | {row['images_per_s']:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


def format_memory_table(report: dict) -> str:
    """The Markdown table of a `--mode memory` report: each setting's peak and time, and the time against
    the unchunked step at the same batch when the report has it (docs/benchmarks.md holds this text)."""
    rows = report["results"]
    unchunked = {row["batch"]: row["seconds_per_step"] for row in rows if row["chunk"] == row["batch"]}
    lines = [
        "| batch | chunk | peak above start (GB) | per image (MB) | s a step | time vs unchunked |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        plain = unchunked.get(row["batch"])
        ratio = f"{row['seconds_per_step'] / plain:.2f}x" if plain and row["chunk"] != row["batch"] else "-"
        per_image = 1000 * row["peak_gb_above_start"] / row["batch"]
        lines.append(
            f"| {row['batch']:,} | {row['chunk']:,} | {row['peak_gb_above_start']:.2f} | {per_image:.1f} "
            f"| {row['seconds_per_step']:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def memory_summary(report: dict, batch: int, chunk: int) -> str:
    """One sentence of a `--mode memory` report, for the README: `batch` in chunks of `chunk` against `chunk`
    and `batch` unchunked."""
    row = {(r["batch"], r["chunk"]): r for r in report["results"]}
    chunked, small, whole = row[(batch, chunk)], row[(chunk, chunk)], row[(batch, batch)]
    return (
        f"a batch of {batch:,} in chunks of {chunk} peaks at {chunked['peak_gb_above_start']:.2f} GB above what "
        f"the process holds before its first step, against {small['peak_gb_above_start']:.2f} GB for a batch of "
        f"{chunk} and {whole['peak_gb_above_start']:.2f} GB for {batch:,} unchunked, and takes "
        f"{chunked['seconds_per_step']:.1f} s a step against {whole['seconds_per_step']:.1f} s unchunked"
    )
