"""The experiment runner: every variant of a grid pretrained and evaluated (and, with a `chain`, fine-tuned and
distilled) in one process, then the table.

[`run_grid`] pretrains and evaluates (on h and z) every variant in one process, so that the decoded
data (one `.npy` cache for all variants) and compiled kernels are reused. A variant whose results
already exist with the same settings is skipped, so a grid can be completed over several runs; with
a time budget, a variant that would not finish in it (estimated from the variants already run) is
not started. Each variant's small files (results, training arguments, log, wall times; never
weights) go to `<results_dir>/<variant>/`, the weights to `<work_dir>/<variant>/`.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ..arguments import UsageError
from ..evaluation.probe import run_linear_probe
from ..folder_format import (
    CHAIN_DIR,
    CONFIG_FILE,
    DECODED_SUBFOLDER,
    EXPERIMENT_FILE,
    IMAGE_PROCESSOR_FILE,
    LOG_HISTORY_FILE,
    RESULTS_FILE,
    TRAINING_ARGS_FILE,
    WALL_TIMES_FILE,
    begin_staging,
    finish_staging,
    write_json_atomically,
)
from ..folder_hold import hold_folder, holds_folders
from ..pretraining.loop import pretrain
from ..reports.naming import shown_value
from ..reports.semi_supervised import write_semi_supervised_table
from .arguments import ExperimentArguments
from .chain import CHAIN_COPIED_FILES, run_chain
from .grid import (
    LOCATION_ARGUMENTS,
    Grid,
    VariantArguments,
    argument_text,
    load_grid,
    parse_overrides,
    variant_arguments,
)
from .summary import stored_settings, write_summary

COPIED_FILES = (RESULTS_FILE, TRAINING_ARGS_FILE, LOG_HISTORY_FILE, CONFIG_FILE, IMAGE_PROCESSOR_FILE)


@dataclass
class RunReport:
    """What [`run_grid`] did: variants run, skipped (results already there) and not started (budget), and
    where it wrote (filled in by [`run_experiments`], for the lines it ends with)."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    results_dir: Path | None = None
    work_dir: Path | None = None
    table: Path | None = None


def check_stored_results(results_dir: Path, name: str, settings: dict[str, Any]) -> bool:
    """True when `<results_dir>/<name>` holds results of exactly these settings (skip the variant).

    Raises:
        ValueError: when it holds results of other settings: never mixed, never silently replaced.
    """
    stored = stored_settings(results_dir, name)
    if stored is None:
        if (results_dir / name).exists() and any((results_dir / name).iterdir()):
            raise UsageError(
                f"{results_dir / name} exists but holds no complete results of the runner ({RESULTS_FILE} and "
                f"{EXPERIMENT_FILE}); move it away or pass another --results_dir."
            )
        return False
    changed = {key: (stored.get(key), value) for key, value in settings.items() if stored.get(key) != value}
    changed.update({key: (value, None) for key, value in stored.items() if key not in settings})
    if changed:
        shown = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in sorted(changed.items())[:6])
        raise UsageError(
            f"{results_dir / name} holds results of other settings ({shown}). Remove that folder to rerun the "
            f"variant, or pass another --results_dir."
        )
    return True


def estimated_seconds(history: list[dict[str, float]], epochs: float) -> float | None:
    """Wall time of a variant of `epochs` epochs, from the variants run so far (None before the first).

    Pretraining is scaled by epochs (each epoch sees the same images whatever the batch size), the
    evaluation taken as is; the largest of the estimates, so that a run stops rather than overruns.
    """
    if not history:
        return None
    return max(
        run["pretrain_seconds"] / run["epochs"] * epochs
        + run["evaluation_seconds"]
        + run.get("chain_seconds", 0)
        for run in history
    )


@holds_folders  # the results and work folders are this grid's until it returns or raises
def run_grid(
    grid: Grid,
    results_dir: str | Path,
    work_dir: str | Path,
    command_line: dict[str, Any] | None = None,
    variants: list[str] | None = None,
    time_budget_minutes: float | None = None,
    command: str | None = None,
    table: str | Path | None = None,
) -> RunReport:
    """Pretrain and evaluate the grid's variants in this process, then write the table.

    Args:
        grid ([`Grid`]): from [`load_grid`].
        results_dir (`str` or `Path`): one folder per variant with results, arguments, log and wall
            times (no weights), plus `summary.json` and `summary.md`.
        work_dir (`str` or `Path`): model folders with weights, and the shared decoded-data cache.
        command_line (`dict`, *optional*): overrides for every variant (after the grid's, before the
            variant's), e.g. `{"num_train_epochs": 1, "max_train_samples": 512}` for a CPU check.
        variants (`list[str]`, *optional*): run only these (default: all, in file order).
        time_budget_minutes (`float`, *optional*): do not start a variant estimated to end past it.
        command (`str`, *optional*): the command line that ran the grid, recorded with each variant.
        table (`str` or `Path`, *optional*): also write the markdown table there (e.g. `results/ablations.md`).

    Returns:
        [`RunReport`].

    Raises:
        ValueError: for unknown variant names or results of other settings, before anything runs.
    """
    results_dir, work_dir = Path(results_dir), Path(work_dir)
    cache_dir = work_dir / DECODED_SUBFOLDER
    command_line = dict(command_line or {})
    names = list(grid.variants) if not variants else list(variants)
    unknown = [name for name in names if name not in grid.variants]
    if unknown:
        raise UsageError(f"--variants {unknown} not in {grid.path}; its variants are {list(grid.variants)}.")
    plan = {name: variant_arguments(grid, name, command_line, work_dir, cache_dir) for name in names}
    hold_folder("results_dir", results_dir)  # a second runner into these folders is refused before any work
    hold_folder("work_dir", work_dir)
    report = RunReport()
    for name in names:  # check every stored result first: a mismatch stops the grid before any work
        if check_stored_results(results_dir, name, plan[name].settings()):
            report.skipped.append(name)

    started, history = time.time(), []
    for name in names:
        if name in report.skipped:
            continue
        arguments = plan[name]
        estimate = estimated_seconds(history, arguments.training.num_train_epochs)
        if time_budget_minutes is not None and estimate is not None:
            if time.time() - started + estimate > 60 * time_budget_minutes:
                report.not_started = [n for n in names if n not in report.skipped and n not in report.ran]
                print(
                    f"[runner] stopping: {report.not_started} would not finish within {time_budget_minutes} "
                    f"minutes (next one estimated at {estimate:.0f} s); rerun to continue."
                )
                break
        history.append(run_variant(grid, name, arguments, results_dir, work_dir, command_line, command))
        report.ran.append(name)
    report.summary = write_summary(grid, results_dir, table)
    return report


def run_variant(
    grid: Grid,
    name: str,
    arguments: VariantArguments,
    results_dir: Path,
    work_dir: Path,
    command_line: dict[str, Any],
    command: str | None,
) -> dict[str, float]:
    """Pretrain and evaluate one variant; copy its small files into `<results_dir>/<name>/`."""
    model_dir = work_dir / name
    if model_dir.exists():  # an earlier attempt of this variant that did not finish: the runner's own scratch
        print(f"[runner] {name}: removing the unfinished run in {model_dir}")
        shutil.rmtree(model_dir)
    print(f"[runner] {name}: pretraining with {arguments.overrides}")
    pretraining = pretrain(arguments.model, arguments.data, arguments.training)
    print(f"[runner] {name}: evaluating on h and z")
    results = run_linear_probe(arguments.evaluation_of_the_model())
    chain, chain_seconds = (
        run_chain(grid, name, arguments, model_dir / CHAIN_DIR) if grid.chain else ([], None)
    )
    wall_times = {
        "pretrain_seconds": round(pretraining["wall_time_seconds"], 1),
        "evaluation_seconds": results["wall_time_seconds"],
        **({"chain_seconds": chain_seconds} if grid.chain else {}),
        "device": results["device"],
        "date": date.today().isoformat(),
    }
    write_variant_files(
        grid, name, arguments, model_dir, results_dir / name, wall_times, command_line, command, chain
    )
    epochs = pretraining["steps"] / max(1, pretraining["steps_per_epoch"])
    return {**wall_times, "epochs": epochs}


def reproduce_command(
    grid: Grid, name: str, command_line: dict[str, Any], results_dir: Path, root: Path | None = None
) -> str:
    """The command that reruns one row of the table (after its folder in `results_dir` is removed), from
    `root` (defaults to the working directory: the repository's root, where `scripts/` is).

    The table is a committed page: its paths (the grid, `results_dir`, a local `dataset_name` given with
    `--override` or `--dataset_name`) are shown as the reports show them ([`shown_value`]): relative to
    `root` when inside it, so the command reruns the row in any checkout, else by their last part, so no
    path of this machine is written.
    """
    root = Path.cwd() if root is None else root
    parts = [
        "python",
        "scripts/run_experiments.py",
        shown_value(grid.path.as_posix(), root),
        "--variants",
        name,
        "--results_dir",
        shown_value(results_dir.as_posix(), root),
    ]
    for key, value in command_line.items():
        parts += ["--override", f"{key}={argument_text(shown_value(value, root))}"]
    return shlex.join(parts)


def write_variant_files(
    grid: Grid,
    name: str,
    arguments: VariantArguments,
    model_dir: Path,
    folder: Path,
    wall_times: dict[str, Any],
    command_line: dict[str, Any],
    command: str | None,
    chain: list[Path] = (),
) -> None:
    """Copy the variant's small files next to `experiment.json` and `wall_times.json`, atomically; with a chain,
    each run's results and card into `chain/<run>/` and the semi-supervised table beside the probe's results.

    Files are staged in a temporary folder and renamed into place, `experiment.json` last, so a folder
    with `experiment.json` is always complete.
    """
    staging = begin_staging(folder)
    for file in COPIED_FILES:
        if (model_dir / file).is_file():
            shutil.copy2(model_dir / file, staging / file)
    for run in chain:
        (staging / CHAIN_DIR / run.name).mkdir(parents=True)
        for file in (file for file in CHAIN_COPIED_FILES if (run / file).is_file()):
            shutil.copy2(run / file, staging / CHAIN_DIR / run.name / file)
    if chain:
        write_semi_supervised_table(chain, model_dir, staging)
    write_json_atomically(staging / WALL_TIMES_FILE, wall_times)
    experiment = {
        "grid": str(grid.path),
        "base": str(grid.base),
        "variant": name,
        "overrides": arguments.overrides,
        "command_line": {key: value for key, value in command_line.items() if key not in LOCATION_ARGUMENTS},
        "reproduce": reproduce_command(grid, name, command_line, folder.parent),
        "command": command,
        "settings": arguments.settings(),
    }
    finish_staging(staging, folder)
    write_json_atomically(folder / EXPERIMENT_FILE, experiment)  # last: its presence marks a complete folder


def command_string() -> str:
    """This process's command line, as typed (for the record)."""
    return shlex.join(["python", *sys.argv])


def run_experiments(args: ExperimentArguments) -> RunReport:
    """Run the grid's variants (or, with `--summary_only`, rewrite its table); [`format_run_report`] says what
    was done and where."""
    grid = load_grid(args.grid)
    table = Path(args.table) if args.table else None
    if args.summary_only:
        summary = write_summary(grid, args.results_dir, args.table)
        return RunReport(summary=summary, results_dir=Path(args.results_dir), table=table)
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
    report.results_dir, report.work_dir, report.table = Path(args.results_dir), Path(args.work_dir), table
    return report
