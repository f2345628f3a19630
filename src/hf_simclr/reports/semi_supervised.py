"""The semi-supervised table: fine-tuning from SimCLR (from h, and from a layer of the projection head), the
distilled students, fine-tuning from random init, and the linear probe, at label fractions.

The table of Chen et al. 2020 (Table 7: fine-tuning on 1% and 10% of the labels) as the student
reproductions report it, top-1 and top-3 per fraction, with the two steps of SimCLR v2 (Chen et al. 2020b):
fine-tuning from the first layer of a deeper head, and distilling the fine-tuned network into a student on the
unlabeled images (self-distillation, or into a smaller network); against the two references that give it
meaning: the same network fine-tuned from random weights, and a linear probe on the frozen SimCLR features.
Every row is always there: a method without a run says "not run". Every number is read from the runs' own
results files (`finetune_results.json` of `scripts/finetune.py` and of `scripts/distill.py`, `results.json` of
`scripts/linear_probe.py`); nothing is typed in. Runs that were not scored on the same evaluation images, or
whose label subsets differ, are refused rather than put side by side. A distilled row's label fraction is its
teacher's: the labels the whole chain saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..arguments import UsageError
from ..dataset_arguments import RECORD
from ..folder_format import (
    FINETUNE_RESULTS_FILE,
    RESULTS_FILE,
    SEMI_SUPERVISED_FILE,
    SEMI_SUPERVISED_TABLE,
    write_json_atomically,
)
from ..model_folder import GENERATED_MARK, read_json, write_generated_text
from .naming import describe_dataset
from .tables import percent

METHODS = {
    "finetune_simclr": "Fine-tune from SimCLR, from h (v1)",
    "finetune_simclr_head": "Fine-tune from SimCLR, from a layer of the projection head (v2)",
    "distill_self": "Distilled, self (the teacher's architecture)",
    "distill_smaller": "Distilled into a smaller student",
    "finetune_random": "Fine-tune from random init",
    "linear_probe": "Linear probe (frozen SimCLR features)",
}
NOT_RUN = "not run"


def method_of(results: dict[str, Any]) -> str:
    """The row of a classifier's results (`finetune_results.json`): fine-tuned from SimCLR from h or from a head
    layer (`classifier_head_layers`, 0 in runs that predate it), from random init, or distilled (self when the
    student is as large as its teacher)."""
    if results.get("method") == "distill":
        student = results["student"]
        return "distill_smaller" if student["parameters"] < student["teacher_parameters"] else "distill_self"
    if results["init"] != "simclr":
        return "finetune_random"
    return "finetune_simclr_head" if results.get("classifier_head_layers") else "finetune_simclr"


def _detail(results: dict[str, Any]) -> str | None:
    """What the row's name leaves open: the head layer, the student's backbone."""
    if results.get("method") == "distill":
        return f"{results['student']['backbone']}, tau {results['distillation_temperature']:g}"
    if results["init"] == "simclr" and results.get("classifier_head_layers"):
        return f"layer {results['classifier_head_layers']}"
    return None


def _from_simclr(results: dict[str, Any]) -> bool:
    """Whether the run started from the SimCLR model (a distilled student: its teacher did)."""
    if results.get("method") == "distill":
        return results["teacher"].get("init") == "simclr"
    return results["init"] == "simclr"


def _evaluation_data(results: dict[str, Any], seed: int) -> dict[str, Any]:
    """What decides which images a run was trained and scored on (must agree across the table)."""
    dataset = results["dataset"]
    return {**{key: dataset.get(key) for key in RECORD}, "subset_seed": seed}


def _check_same_data(runs: list[tuple[str, dict[str, Any], int]]) -> dict[str, Any]:
    """The evaluation data shared by all `(source, results, subset seed)` runs; raises if they differ."""
    first_source, first_results, first_seed = runs[0]
    evaluation = _evaluation_data(first_results, first_seed)
    for source, results, seed in runs[1:]:
        data = _evaluation_data(results, seed)
        if data != evaluation:
            field = next(key for key in data if data[key] != evaluation[key])
            raise UsageError(
                f"{source} and {first_source} were not trained and scored on the same data ({field}: "
                f"{data[field]!r} vs {evaluation[field]!r}); rerun one of them with the other's settings."
            )
    return {**evaluation, "eval_size": first_results["split_sizes"]["eval"]}


def _same_model(first: str, second: str) -> bool:
    paths = [Path(name).expanduser() for name in (first, second)]
    if all(path.exists() for path in paths):
        return paths[0].resolve() == paths[1].resolve()
    return first == second


def collect_semi_supervised(
    finetune_results: Sequence[tuple[str, dict[str, Any]]],
    probe_results: tuple[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Gather the entries of the table from results, checking that they are comparable.

    Args:
        finetune_results: `(source, results)` pairs, `results` as `finetune_results.json` holds them.
        probe_results: `(source, results)` of the probe (`results.json`); its `label_fraction` entries give
            the linear-probe rows (top-3 from `linear_top3` where the probe recorded it).

    Returns:
        `dict` with `entries` (one per method and fraction: `method`, `label_fraction`,
        `num_train_samples`, `top1`, `top3` (None if not recorded), `source`; fine-tuning runs also
        `device` and `wall_time_seconds`), `evaluation` (dataset,
        splits, subsets, number of evaluation images) and `fractions` (sorted).

    Raises:
        ValueError: for no runs, two runs of the same method and fraction, runs scored on different data,
            label subsets of different sizes at one fraction, or fine-tuning that started from another
            model than the probe evaluated.
    """
    runs = [(source, results, results["dataset"]["subset_seed"]) for source, results in finetune_results]
    runs += [(*probe_results, probe_results[1]["seed"])] if probe_results is not None else []
    if not runs:
        raise UsageError("no results to tabulate: pass fine-tuning runs and/or the probe's results.")
    evaluation = _check_same_data(runs)
    entries = [
        {
            "method": method_of(results),
            "detail": _detail(results),
            "label_fraction": float(results["label_fraction"]),
            "num_train_samples": results["num_train_samples"],
            "top1": results["top1"],
            "top3": results["top3"],
            "source": source,
            "device": results.get("device"),
            "wall_time_seconds": results.get("wall_time_seconds"),
        }
        for source, results in finetune_results
    ]
    if probe_results is not None:
        probe_source, probe = probe_results
        for source, results in finetune_results:
            if _from_simclr(results) and not _same_model(
                results["model_name_or_path"], probe["model_name_or_path"]
            ):
                raise UsageError(
                    f"{source} fine-tuned {results['model_name_or_path']}, but {probe_source} probed "
                    f"{probe['model_name_or_path']}: the table compares one SimCLR model; pass runs of one."
                )
        entries += [
            {
                "method": "linear_probe",
                "label_fraction": float(fraction),
                "num_train_samples": values["num_train_samples"],
                "top1": values["linear_top1"],
                "top3": values.get("linear_top3"),
                "source": probe_source,
            }
            for fraction, values in probe.get("label_fraction", {}).items()
        ]
    _check_entries(entries)
    fractions = sorted({entry["label_fraction"] for entry in entries})
    return {"fractions": fractions, "entries": entries, "evaluation": evaluation}


def _check_entries(entries: list[dict[str, Any]]) -> None:
    seen: dict[tuple[str, float], str] = {}
    sizes: dict[float, tuple[int, str]] = {}
    for entry in entries:
        key = (entry["method"], entry["label_fraction"])
        if key in seen:
            raise UsageError(
                f"two results for {METHODS[key[0]]} at {100 * key[1]:g}% of the labels: {seen[key]} and "
                f"{entry['source']}; pass one of them."
            )
        seen[key] = entry["source"]
        size, source = sizes.setdefault(
            entry["label_fraction"], (entry["num_train_samples"], entry["source"])
        )
        if entry["num_train_samples"] != size:
            raise UsageError(
                f"at {100 * entry['label_fraction']:g}% of the labels {entry['source']} trained on "
                f"{entry['num_train_samples']} images but {source} on {size}: the label subsets differ "
                f"(same --max_train_samples and seed give the same subset)."
            )


def format_semi_supervised_table(table: dict[str, Any]) -> str:
    """The table in Markdown: one row per method, top-1 and top-3 (percent) per label fraction, "not run" where
    a method has no run at that fraction and "-" where a run did not record the number."""
    fractions = table["fractions"]
    by_key = {(entry["method"], entry["label_fraction"]): entry for entry in table["entries"]}
    sizes = {entry["label_fraction"]: entry["num_train_samples"] for entry in table["entries"]}
    header = ["Method"]
    for fraction in fractions:
        header += [f"{100 * fraction:g}% labels ({sizes[fraction]} images) top-1", "top-3"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, name in METHODS.items():
        details = sorted({e["detail"] for e in table["entries"] if e["method"] == method and e.get("detail")})
        cells = [f"{name} ({'; '.join(details)})" if details else name]
        for fraction in fractions:
            entry = by_key.get((method, fraction))
            cells += [percent(entry.get("top1")), percent(entry.get("top3"))] if entry else [NOT_RUN, NOT_RUN]
        lines.append("| " + " | ".join(cells) + " |")
    evaluation = table["evaluation"]
    lines.append("")
    lines.append(
        f"Accuracy in percent on {evaluation['eval_size']} images of split `{evaluation['eval_split']}` of "
        f"{describe_dataset(evaluation['name'])['name']}; label subsets class-balanced, seed "
        f"{evaluation['subset_seed']}; a distilled student counts its teacher's labels."
    )
    return "\n".join(lines) + "\n"


def _read_results(path: str | Path, default_name: str) -> tuple[str, dict[str, Any]]:
    path = Path(path)
    file = path / default_name if path.is_dir() else path
    if not file.is_file():
        raise UsageError(f"{file} not found: pass a run folder that holds {default_name}, or the file.")
    return str(file), read_json(file)


def write_semi_supervised_table(
    finetune_runs: Sequence[str | Path], probe_run: str | Path | None, output_dir: str | Path
) -> dict[str, Any]:
    """Read the runs' results files, write `semi_supervised.json` and `semi_supervised.md` into `output_dir`.

    Args:
        finetune_runs: fine-tuning output folders (or their `finetune_results.json`).
        probe_run: the probe's output folder (or its `results.json`), or None.
        output_dir: where the two files go (a model folder: its card then shows the table).

    Returns:
        The table, as written to `semi_supervised.json`.
    """
    table = collect_semi_supervised(
        [_read_results(run, FINETUNE_RESULTS_FILE) for run in finetune_runs],
        _read_results(probe_run, RESULTS_FILE) if probe_run is not None else None,
    )
    markdown = f"{GENERATED_MARK} (scripts/semi_supervised_table.py) from the runs' results files; do not edit. -->\n"
    markdown += format_semi_supervised_table(table)
    write_generated_text(Path(output_dir) / SEMI_SUPERVISED_TABLE, markdown, "pick another --output_dir")
    write_json_atomically(Path(output_dir) / SEMI_SUPERVISED_FILE, table)
    return table
