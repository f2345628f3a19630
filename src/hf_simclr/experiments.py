"""The experiment runner: a grid of recipe variants, each pretrained and evaluated, then one results table.

A grid file (YAML) names a base recipe and variants, each a set of overrides of the recipe's arguments::

    base: configs/cifar10-resnet18-reference.yaml   # relative to the grid file, or to the working directory
    overrides: {num_train_epochs: 50, seed: 0, checkpointing_steps: none}   # every variant (the protocol)
    evaluation: {knn_k: [10, 200]}                  # arguments of the evaluation (LinearProbeArguments)
    variants:
      base: {}
      no-head: {projection_layers: 0}
    sections:                                        # optional: how the markdown table is grouped
      - title: Projection head
        variants: [base, no-head]
        paper: "A nonlinear head beats a linear one by ~3 points and no head by >10 (Table 3)."
        verdict: "..."                               # one sentence, written once the numbers are in
    spread: [base, base-seed1]                       # optional: two seeds of one recipe, the run-to-run spread

[`run_grid`] pretrains and evaluates (on h and z) every variant in one process, so that the decoded
data (one `.npy` cache for all variants) and compiled kernels are reused. A variant whose results
already exist with the same settings is skipped, so a grid can be completed over several runs; with
a time budget, a variant that would not finish in it (estimated from the variants already run) is
not started. Each variant's small files (results, training arguments, log, wall times; never
weights) go to `<results_dir>/<variant>/`, the weights to `<work_dir>/<variant>/`; the table
(`summary.json`, `summary.md`) is written from the results files only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from .evaluation import LinearProbeArguments, run_linear_probe
from .hub import LOG_HISTORY_FILE, RESULTS_FILE, TRAINING_ARGS_FILE, write_text_atomically
from .training import (
    DataArguments,
    ModelArguments,
    PretrainingArguments,
    pretrain,
    recipe_arguments,
    run_arguments,
)

EXPERIMENT_FILE = "experiment.json"  # what the variant was run with: the skip-or-refuse check reads it
WALL_TIMES_FILE = "wall_times.json"
SUMMARY_JSON = "summary.json"
SUMMARY_MARKDOWN = "summary.md"
COPIED_FILES = (RESULTS_FILE, TRAINING_ARGS_FILE, LOG_HISTORY_FILE, "config.json", "preprocessor_config.json")
# Pretraining arguments that also set the evaluation's data, unless the grid's `evaluation` sets them.
SHARED_DATA_ARGUMENTS = ("dataset_name", "dataset_config_name", "dataset_revision", "max_train_samples",
                         "max_eval_samples", "image_column", "label_column", "eval_split")  # fmt: skip
# Where a run happens, not what it is: left out when deciding whether stored results match a variant.
LOCATION_ARGUMENTS = ("dataset_name", "output_dir", "decoded_cache_dir", "model_name_or_path")
PRETRAINING_ARGUMENTS = (ModelArguments, DataArguments, PretrainingArguments)


@dataclass
class Section:
    """A group of rows in the results table, with the paper's finding and our verdict beside it."""

    title: str
    variants: list[str]
    paper: str | None = None
    verdict: str | None = None


@dataclass
class Grid:
    """A parsed grid file (see the module docstring).

    Attributes:
        path (`Path`): the grid file.
        base (`Path`): the base recipe (a `configs/*.yaml` of `scripts/pretrain.py`).
        overrides (`dict`): applied to every variant, before the variant's own.
        evaluation (`dict`): [`LinearProbeArguments`] fields for every evaluation.
        variants (`dict[str, dict]`): name -> overrides, in file order.
        sections (`list[Section]`): grouping of the table; one section of all variants by default.
        spread (`list[str]`): two variants that differ only by seed, or empty.
    """

    path: Path
    base: Path
    overrides: dict[str, Any]
    evaluation: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    sections: list[Section]
    spread: list[str] = field(default_factory=list)


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file: every name and argument is checked before anything runs.

    Raises:
        ValueError: for a missing base recipe, an unknown argument, a section naming an unknown variant,
            a variant name that cannot be a folder name, or a `spread` that is not two variants.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"grid file {path} not found; pass a YAML file with `base` and `variants`.")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(spec) - {"base", "overrides", "evaluation", "variants", "sections", "spread"})
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; a grid has base, overrides, evaluation, variants, "
                         f"sections, spread.")  # fmt: skip
    if "base" not in spec or not spec.get("variants"):
        raise ValueError(f"{path}: a grid needs `base` (a recipe file) and at least one entry in `variants`.")
    base = Path(spec["base"])
    if not base.is_file() and (path.parent / base).is_file():
        base = Path(os.path.normpath(path.parent / base))
    if not base.is_file():
        raise ValueError(f"{path}: base recipe {spec['base']} not found (relative to the working directory or "
                         f"to the grid file).")  # fmt: skip
    variants = {str(name): dict(overrides or {}) for name, overrides in spec["variants"].items()}
    for name in variants:
        if not name or name.startswith(".") or "/" in name or name != name.strip():
            raise ValueError(
                f"{path}: variant name {name!r} must be usable as a folder name (no '/', no dot first)."
            )
    sections = [Section(**section) for section in spec.get("sections") or []]
    sections = sections or [Section(title=path.stem, variants=list(variants))]
    for section in sections:
        missing = [name for name in section.variants if name not in variants]
        if missing:
            raise ValueError(f"{path}: section {section.title!r} names unknown variants {missing}; "
                             f"variants are {list(variants)}.")  # fmt: skip
    spread = list(spec.get("spread") or [])
    if spread and (len(spread) != 2 or any(name not in variants for name in spread)):
        raise ValueError(f"{path}: spread must name two variants (two seeds of one recipe); got {spread}.")
    grid = Grid(path, base, dict(spec.get("overrides") or {}), dict(spec.get("evaluation") or {}), variants,
                sections, spread)  # fmt: skip
    for name in variants:  # parse every variant now: a typo fails here, not after hours of the grid
        variant_arguments(grid, name, {}, Path("unused"), Path("unused"))
    return grid


@dataclass
class VariantArguments:
    """Everything one variant runs with."""

    model: ModelArguments
    data: DataArguments
    training: PretrainingArguments
    evaluation: LinearProbeArguments
    overrides: dict[str, Any]  # the grid's, the command line's and the variant's, merged

    def settings(self) -> dict[str, Any]:
        """What the variant's results depend on (paths left out): stored with the results, compared on rerun."""
        merged = run_arguments(self.model, self.data, self.training)
        evaluation = {
            f"evaluation.{key}": value for key, value in dataclasses.asdict(self.evaluation).items()
        }
        settings = {**merged, **evaluation}
        location = {*LOCATION_ARGUMENTS, *(f"evaluation.{key}" for key in LOCATION_ARGUMENTS)}
        return json.loads(json.dumps({k: v for k, v in settings.items() if k not in location}, default=str))


def _as_argv(overrides: dict[str, Any]) -> list[str]:
    return [item for key, value in overrides.items() for item in (f"--{key}", _argument_text(value))]


def _argument_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(item) for item in value)
    return str(value)


def variant_arguments(
    grid: Grid, name: str, command_line: dict[str, Any], work_dir: Path, cache_dir: Path
) -> VariantArguments:
    """Parse the arguments of variant `name`: recipe, then grid overrides, command line, variant.

    Raises:
        ValueError: for an argument no dataclass knows (the message names the variant and the argument).
    """
    overrides = {**grid.overrides, **command_line, **grid.variants[name]}
    pretraining_fields = {f.name for cls in PRETRAINING_ARGUMENTS for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - pretraining_fields)
    if unknown:
        raise ValueError(f"{grid.path}: variant {name!r} sets {unknown}, which scripts/pretrain.py does not take "
                         f"(see `python scripts/pretrain.py --help`).")  # fmt: skip
    argv = recipe_arguments(str(grid.base)) + _as_argv(overrides)
    argv += ["--output_dir", str(work_dir / name), "--decoded_cache_dir", str(cache_dir)]
    parser = HfArgumentParser(PRETRAINING_ARGUMENTS)
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)

    probe_fields = {f.name for f in dataclasses.fields(LinearProbeArguments)}
    unknown = sorted(set(grid.evaluation) - probe_fields)
    if unknown:
        raise ValueError(
            f"{grid.path}: evaluation sets {unknown}, which scripts/linear_probe.py does not take."
        )
    shared = {key: getattr(data_args, key) for key in SHARED_DATA_ARGUMENTS}
    evaluation = {"features": "both", "skip_baseline": False, **shared, **grid.evaluation}
    evaluation_args = LinearProbeArguments(
        **{
            **evaluation,
            "model_name_or_path": str(work_dir / name),
            "output_dir": str(work_dir / name),
            "decoded_cache_dir": str(cache_dir),
        }  # fmt: skip
    )
    return VariantArguments(model_args, data_args, training_args, evaluation_args, overrides)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["num_train_epochs=1", "max_train_samples=512"]` -> `{"num_train_epochs": 1, "max_train_samples": 512}`.

    Raises:
        ValueError: for an item without `=`.
    """
    parsed = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise ValueError(f"--override {item!r}: write key=value, e.g. --override num_train_epochs=1.")
        parsed[key.strip().lstrip("-")] = yaml.safe_load(value)
    return parsed


@dataclass
class RunReport:
    """What [`run_grid`] did: variants run, skipped (results already there) and not started (budget)."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)


def stored_settings(results_dir: Path, name: str) -> dict[str, Any] | None:
    """The settings a finished variant was run with, or None when it has no complete results."""
    folder = results_dir / name
    if not (folder / RESULTS_FILE).is_file() or not (folder / EXPERIMENT_FILE).is_file():
        return None
    return json.loads((folder / EXPERIMENT_FILE).read_text())["settings"]


def check_stored_results(results_dir: Path, name: str, settings: dict[str, Any]) -> bool:
    """True when `<results_dir>/<name>` holds results of exactly these settings (skip the variant).

    Raises:
        ValueError: when it holds results of other settings: never mixed, never silently replaced.
    """
    stored = stored_settings(results_dir, name)
    if stored is None:
        if (results_dir / name).exists() and any((results_dir / name).iterdir()):
            raise ValueError(
                f"{results_dir / name} exists but holds no complete results of the runner ({RESULTS_FILE} and "
                f"{EXPERIMENT_FILE}); move it away or pass another --results_dir."
            )
        return False
    changed = {key: (stored.get(key), value) for key, value in settings.items() if stored.get(key) != value}
    changed.update({key: (value, None) for key, value in stored.items() if key not in settings})
    if changed:
        shown = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in sorted(changed.items())[:6])
        raise ValueError(
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
        run["pretrain_seconds"] / run["epochs"] * epochs + run["evaluation_seconds"] for run in history
    )


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
    cache_dir = work_dir / "decoded"
    command_line = dict(command_line or {})
    names = list(grid.variants) if not variants else list(variants)
    unknown = [name for name in names if name not in grid.variants]
    if unknown:
        raise ValueError(f"--variants {unknown} not in {grid.path}; its variants are {list(grid.variants)}.")
    plan = {name: variant_arguments(grid, name, command_line, work_dir, cache_dir) for name in names}
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
                print(f"[runner] stopping: {report.not_started} would not finish within {time_budget_minutes} "
                      f"minutes (next one estimated at {estimate:.0f} s); rerun to continue.")  # fmt: skip
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
    results = run_linear_probe(arguments.evaluation)
    wall_times = {
        "pretrain_seconds": round(pretraining["wall_time_seconds"], 1),
        "evaluation_seconds": results["wall_time_seconds"],
        "device": results["device"],
        "date": date.today().isoformat(),
    }
    write_variant_files(
        grid, name, arguments, model_dir, results_dir / name, wall_times, command_line, command
    )
    epochs = pretraining["steps"] / max(1, pretraining["steps_per_epoch"])
    return {**wall_times, "epochs": epochs}


def reproduce_command(grid: Grid, name: str, command_line: dict[str, Any], results_dir: Path) -> str:
    """The command that reruns one row of the table (after its folder in `results_dir` is removed)."""
    parts = ["python", "scripts/run_experiments.py", grid.path.as_posix(), "--variants", name,
             "--results_dir", results_dir.as_posix()]  # fmt: skip
    for key, value in command_line.items():
        parts += ["--override", f"{key}={_argument_text(value)}"]
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
) -> None:
    """Copy the variant's small files next to `experiment.json` and `wall_times.json`, atomically.

    Files are staged in a temporary folder and renamed into place, `experiment.json` last, so a folder
    with `experiment.json` is always complete.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".tmp-{name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for file in COPIED_FILES:
        if (model_dir / file).is_file():
            shutil.copy2(model_dir / file, staging / file)
    (staging / WALL_TIMES_FILE).write_text(json.dumps(wall_times, indent=2) + "\n")
    experiment = {
        "grid": str(grid.path),
        "base": str(grid.base),
        "variant": name,
        "overrides": arguments.overrides,
        "reproduce": reproduce_command(grid, name, command_line, folder.parent),
        "command": command,
        "settings": arguments.settings(),
    }
    (staging / f".{EXPERIMENT_FILE}").write_text(json.dumps(experiment, indent=2, default=str) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    os.replace(folder / f".{EXPERIMENT_FILE}", folder / EXPERIMENT_FILE)


# ----------------------------------------------------------------------------------------------
# The table, from the results files only
# ----------------------------------------------------------------------------------------------


def metric_columns(grid: Grid) -> list[tuple[str, str, str]]:
    """The table's accuracy columns: (title, representation, metric) for kNN at each k and the linear probe."""
    ks = [str(k) for k in grid.evaluation.get("knn_k", [10, 200])]
    columns = [(f"kNN@{k} (h)", "h", f"knn@{k}") for k in ks] + [("linear (h)", "h", "linear")]
    return columns + [("linear (z)", "z", "linear"), (f"kNN@{ks[0]} (z)", "z", f"knn@{ks[0]}")]


def summary_row(grid: Grid, name: str, results_dir: Path) -> dict[str, Any]:
    """One row of the table from `<results_dir>/<name>/` (results, wall times, experiment), or a not-run row."""
    folder = results_dir / name
    row: dict[str, Any] = {"variant": name, "changed": grid.variants[name]}
    if stored_settings(results_dir, name) is None:
        return {**row, "status": "not run"}
    results = json.loads((folder / RESULTS_FILE).read_text())
    wall_times = json.loads((folder / WALL_TIMES_FILE).read_text())
    experiment = json.loads((folder / EXPERIMENT_FILE).read_text())
    accuracies = {}
    for representation, source in (("h", results), ("z", results.get("z") or {})):
        for k, value in (source.get("knn_top1") or {}).items():
            accuracies[f"{representation}:knn@{k}"] = value
        accuracies[f"{representation}:linear"] = source.get("linear_top1")
    return {
        **row,
        "status": "done",
        "accuracy": accuracies,
        "epochs": experiment["settings"].get("num_train_epochs"),
        "pretrain_seconds": wall_times["pretrain_seconds"],
        "evaluation_seconds": wall_times["evaluation_seconds"],
        "device": wall_times["device"],
        "date": wall_times["date"],
        "reproduce": experiment["reproduce"],
        "split_sizes": results["split_sizes"],
    }


def seed_spread(grid: Grid, rows: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """|difference| between the two `spread` variants for each accuracy on h (None until both are done)."""
    if not grid.spread or any(rows[name]["status"] != "done" for name in grid.spread):
        return None
    first, second = (rows[name]["accuracy"] for name in grid.spread)
    return {
        key: abs(first[key] - second[key])
        for key in first
        if key.startswith("h:") and first[key] is not None and second.get(key) is not None
    }


def write_summary(
    grid: Grid, results_dir: str | Path, table: str | Path | None = None
) -> list[dict[str, Any]]:
    """Write `summary.json` and `summary.md` (and `table`, when given) from the results files; returns the rows."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    rows = {name: summary_row(grid, name, results_dir) for name in grid.variants}
    spread = seed_spread(grid, rows)
    summary = {
        "grid": str(grid.path),
        "base": str(grid.base),
        "rows": list(rows.values()),
        "seed_spread": spread,
    }
    markdown = render_summary(grid, rows, spread, results_dir)
    outputs = [(results_dir / SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")]
    outputs += [(results_dir / SUMMARY_MARKDOWN, markdown)] + ([(Path(table), markdown)] if table else [])
    for path, text in outputs:
        write_text_atomically(path, text)
    return list(rows.values())


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _changed(overrides: dict[str, Any]) -> str:
    return ", ".join(f"`{key}: {value}`" for key, value in overrides.items()) or "none (the base)"


def render_summary(
    grid: Grid, rows: dict[str, dict[str, Any]], spread: dict[str, float] | None, results_dir: Path
) -> str:
    """The markdown table of a grid: one section per `sections` entry, every number from `rows`."""
    columns = metric_columns(grid)
    lines = [
        f"<!-- Written by scripts/run_experiments.py from the results files in {results_dir.as_posix()}/; "
        "do not edit. -->",
        f"# Results of `{grid.path.as_posix()}`",
        "",
        f"Base recipe: `{grid.base.as_posix()}`; every variant also sets {_changed(grid.overrides)}. kNN top-1 "
        "(cosine, temperature 0.1) and the linear probe (L-BFGS on frozen, standardised features, weight decay "
        "picked on a held-out 10% of train) are measured on the test split, in percent; h is the encoder's "
        "output, z the projection head's.",
        "",
    ]
    base = rows[grid.spread[0]] if grid.spread else None
    if spread is not None:
        shown = ", ".join(f"{title} {100 * spread[f'h:{metric}']:.2f}" for title, representation, metric in columns
                          if representation == "h" and f"h:{metric}" in spread)  # fmt: skip
        lines += [
            f"Run-to-run spread (`{grid.spread[0]}` vs `{grid.spread[1]}`: the same recipe, another seed): {shown} "
            f"points. A result on h that differs from `{grid.spread[0]}` by more than that spread is marked *.",
            "",
        ]
    header = ["variant", "changed settings", *(title for title, _, _ in columns), "epochs", "pretraining (s)",
              "evaluation (s)", "device", "date", "reproduce"]  # fmt: skip
    align = ["---", "---", *("---:" for _ in columns), "---:", "---:", "---:", "---", "---", "---"]
    for section in grid.sections:
        lines += [f"## {section.title}", ""]
        if section.paper:
            lines += [f"Paper: {section.paper}", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
        lines += [_table_row(rows[name], columns, base, spread) for name in section.variants]
        if section.verdict:
            lines += ["", f"Ours: {section.verdict}"]
        lines.append("")
    return "\n".join(lines)


def _table_row(
    row: dict[str, Any],
    columns: list[tuple[str, str, str]],
    base: dict[str, Any] | None,
    spread: dict[str, float] | None,
) -> str:
    if row["status"] != "done":
        cells = [row["variant"], _changed(row["changed"]), "not run", *([""] * (len(columns) + 5))]
        return "| " + " | ".join(cells) + " |"

    def metric(representation: str, name: str) -> str:
        key = f"{representation}:{name}"
        value = row["accuracy"].get(key)
        text = _percent(value)
        compared = spread is not None and base is not None and row is not base and key in spread
        if compared and value is not None and abs(value - base["accuracy"][key]) > spread[key]:
            text += "*"
        return text

    cells = [
        row["variant"], _changed(row["changed"]), *(metric(rep, name) for _, rep, name in columns),
        f"{row['epochs']:g}", f"{row['pretrain_seconds']:.0f}", f"{row['evaluation_seconds']:.0f}", row["device"],
        row["date"], f"`{row['reproduce']}`",
    ]  # fmt: skip
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def command_string() -> str:
    """This process's command line, as typed (for the record)."""
    return shlex.join(["python", *sys.argv])
