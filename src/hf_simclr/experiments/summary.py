"""The table of a grid, written from the results files only: one row per variant, one section per finding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..folder_format import (
    EXPERIMENT_FILE,
    RESULTS_FILE,
    SUMMARY_JSON,
    SUMMARY_MARKDOWN,
    WALL_TIMES_FILE,
    write_text_atomically,
)
from ..model_folder import GENERATED_MARK, read_json, write_generated_text
from ..reports.naming import shown_value
from ..reports.tables import percent
from .grid import Grid


def stored_settings(results_dir: Path, name: str) -> dict[str, Any] | None:
    """The settings a finished variant was run with, or None when it has no complete results."""
    folder = results_dir / name
    if not (folder / RESULTS_FILE).is_file() or not (folder / EXPERIMENT_FILE).is_file():
        return None
    return read_json(folder / EXPERIMENT_FILE)["settings"]


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
    results = read_json(folder / RESULTS_FILE)
    wall_times = read_json(folder / WALL_TIMES_FILE)
    experiment = read_json(folder / EXPERIMENT_FILE)
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
        "command_line": experiment.get("command_line", {}),
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
    for path in [results_dir / SUMMARY_MARKDOWN] + ([Path(table)] if table else []):
        write_generated_text(
            path,
            markdown,
            "pass another --table"
            if path != results_dir / SUMMARY_MARKDOWN
            else "pass another --results_dir",
        )
    write_text_atomically(results_dir / SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    return list(rows.values())


def _command_line_note(rows: dict[str, dict[str, Any]]) -> list[str]:
    """What the rows were run with beyond the grid file (`--override`), as the results files record it."""
    groups: dict[str, list[str]] = {}
    for row in rows.values():
        if row["status"] == "done" and row.get("command_line"):
            groups.setdefault(_changed(row["command_line"]), []).append(row["variant"])
    if not groups:
        return []
    notes = [
        f"{changed} (rows {', '.join(f'`{name}`' for name in names)})" for changed, names in groups.items()
    ]
    return [
        f"Run with these command-line overrides, which the grid file does not hold: {'; '.join(notes)}.",
        "",
    ]


def _changed(overrides: dict[str, Any]) -> str:
    shown = _shown(overrides)
    return ", ".join(f"`{key}: {value}`" for key, value in shown.items()) or "none (the base)"


def _shown(value: Any) -> Any:
    """A path or setting as the page shows it: the page is committed and read in other checkouts, so a local
    path is shown as the reports show one ([`shown_value`]), relative to the working directory (the
    repository's root, where the page's commands run) when inside it, else by its last part."""
    return shown_value(value, Path.cwd())


def render_summary(
    grid: Grid, rows: dict[str, dict[str, Any]], spread: dict[str, float] | None, results_dir: Path
) -> str:
    """The markdown table of a grid: one section per `sections` entry, every number from `rows`."""
    columns = metric_columns(grid)
    lines = [
        f"{GENERATED_MARK} (scripts/run_experiments.py) from the results files in "
        f"{_shown(results_dir.as_posix())}/; do not edit. -->",
        f"# Results of `{_shown(grid.path.as_posix())}`",
        "",
        f"Base recipe: `{_shown(grid.base.as_posix())}`; every variant also sets {_changed(grid.overrides)}. "
        "kNN top-1 "
        "(cosine, temperature 0.1) and the linear probe (L-BFGS on frozen, standardised features, weight decay "
        "picked on a held-out 10% of train) are measured on the test split, in percent; h is the encoder's "
        "output, z the projection head's.",
        "",
        *_command_line_note(rows),
    ]
    base = rows[grid.spread[0]] if grid.spread else None
    if spread is not None:
        shown = ", ".join(
            f"{title} {100 * spread[f'h:{metric}']:.2f}"
            for title, representation, metric in columns
            if representation == "h" and f"h:{metric}" in spread
        )
        lines += [
            f"Run-to-run spread (`{grid.spread[0]}` vs `{grid.spread[1]}`: the same recipe, another seed): {shown} "
            f"points. A result on h that differs from `{grid.spread[0]}` by more than that spread is marked *.",
            "",
        ]
    header = [
        "variant",
        "changed settings",
        *(title for title, _, _ in columns),
        "epochs",
        "pretraining (s)",
        "evaluation (s)",
        "device",
        "date",
        "reproduce",
    ]
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
        text = percent(value)
        compared = spread is not None and base is not None and row is not base and key in spread
        if compared and value is not None and abs(value - base["accuracy"][key]) > spread[key]:
            text += "*"
        return text

    cells = [
        row["variant"],
        _changed(row["changed"]),
        *(metric(rep, name) for _, rep, name in columns),
        f"{row['epochs']:g}",
        f"{row['pretrain_seconds']:.0f}",
        f"{row['evaluation_seconds']:.0f}",
        row["device"],
        row["date"],
        f"`{row['reproduce']}`",
    ]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"
