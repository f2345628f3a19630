"""`scripts/benchmark.py`'s command line: the arguments ([`hf_simclr.benchmark.arguments`]) read as one
[`Command`], a mode this machine cannot time refused before any work, and what it says at the end."""

from __future__ import annotations

from ..command import Command
from ..conditions import applied_settings
from .arguments import BenchmarkArguments


def run_on_this_machine(args: BenchmarkArguments) -> dict:
    """[`run_benchmark`] of a mode this machine can time (a documented command parses on any machine; running
    `--mode training` without CUDA is refused here, before any work, by its declared condition).

    Raises:
        UsageError: for `--mode training` without CUDA, whose full-size steps would time the CPU for hours.
    """
    import torch

    from .report import run_benchmark

    applied_settings((BenchmarkArguments,), args, {"cuda": torch.cuda.is_available()})
    return run_benchmark(args)


def describe_report(report: dict) -> str:
    """What `scripts/benchmark.py` says at the end (where the report went is said as it is written)."""
    if report["arguments"]["output_json"] is not None:
        return ""
    return "The report was not written: pass --output_json FILE to keep it (the machine, the command, every row)."


_OUTPUT = "give --output_json FILE (one JSON report: the machine, the command, every row)"


_STEPS = "each mode times its own: --memory_steps (memory), --cifar_batches and --stl10_batches (data)"


# Flags of pretraining and of other benchmarks that people type here, with this script's way of saying them.
BENCHMARK_ELSEWHERE_FLAGS = (
    ("output", _OUTPUT),
    ("output_file", _OUTPUT),
    ("output_dir", _OUTPUT),
    ("steps", _STEPS),
    ("max_steps", _STEPS),
    ("chunk_size", "give --memory_settings BATCH:CHUNK [...] (--mode memory)"),
    (
        "per_device_train_batch_size",
        "give --memory_settings BATCH:CHUNK (--mode memory) or --batch_size (--mode data)",
    ),
    ("backbone", "give --memory_backbone NAME (--mode memory); --mode training times --cases"),
    ("image_size", "give --memory_image_size N (--mode memory)"),
    ("preprocessing_num_workers", "give --decode_workers N [N ...] (--mode decode: the worker counts timed)"),
    (
        "dataloader_num_workers",
        "give --num_workers N [N ...] (--mode data) or --cpu_workers N (--mode training)",
    ),
    ("device", "each mode times what this machine has; --mode training needs a GPU"),
)


# `scripts/benchmark.py`.
BENCHMARK = Command(
    "benchmark.py",
    (BenchmarkArguments,),
    "hf_simclr.benchmark.command:run_on_this_machine",
    report="hf_simclr.benchmark.command:describe_report",
    known_elsewhere=BENCHMARK_ELSEWHERE_FLAGS,
)
