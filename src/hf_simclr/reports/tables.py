"""Tables of a run's results, as text: the probe's numbers for the terminal, the snapshot curve in Markdown.

Accuracies are stored as fractions with 4 digits (`results.json`); every table shows them in percent with
[`percent`], exactly 100x the stored value, so nothing is rounded away.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..folder_format import FEATURE_CACHE_DIR, MODEL_CARD_FILE, RESULTS_FILE
from ..model_folder import is_generated


def percent(value: float | None) -> str:
    """An accuracy stored as a fraction, shown in percent with 2 decimals; `-` when there is none."""
    return "-" if value is None else f"{100 * value:.2f}"


def format_results_table(results: dict[str, Any]) -> str:
    """A plain-text table of the numbers (percent) on h, z and the random-init baseline, for the terminal."""
    baseline = results.get("random_init_baseline") or {}
    z = results.get("z") or {}
    rows = [
        (
            f"Linear probe top-{k}",
            results.get(f"linear_top{k}"),
            z.get(f"linear_top{k}"),
            baseline.get(f"linear_top{k}"),
        )
        for k in (1, 3, 5)
    ]
    for k in results.get("knn_top1") or z.get("knn_top1") or {}:
        rows.append(
            (
                f"kNN top-1 (k={k})",
                (results.get("knn_top1") or {}).get(k),
                (z.get("knn_top1") or {}).get(k),
                (baseline.get("knn_top1") or {}).get(k),
            )
        )
    for fraction, values in results.get("label_fraction", {}).items():
        rows.append((f"Linear top-1, {100 * float(fraction):g}% labels", values["linear_top1"], None, None))

    def cell(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{100 * value:>{width}.2f}"

    lines = [f"{'':<32}{'h':>10}{'z':>10}{'random init':>14}"]
    lines += [f"{name:<32}{cell(h, 10)}{cell(zv, 10)}{cell(base, 14)}" for name, h, zv, base in rows]
    for fraction, reason in results.get("label_fraction_skipped", {}).items():
        lines.append(f"label fraction {fraction} skipped: {reason}")
    if results.get("z_skipped"):
        lines.append(f"z not probed: {results['z_skipped']}")
    sizes = results["split_sizes"]
    lines.append(f"({sizes['train']} train / {sizes['eval']} eval images, seed {results['seed']})")
    return "\n".join(lines)


def format_snapshot_table(curve: dict[str, Any]) -> str:
    """Markdown: accuracy per snapshot epoch, then the last snapshot's per-class precision/recall/F1 (%)."""
    ks = list(curve["rows"][0]["knn_top1"])
    lines = [
        "<!-- Written by hf_simclr.evaluation.snapshots.run_snapshot_curve from snapshot_curve.json; do not edit. -->",
        "## Quality across pretraining (frozen h)",
        "",
        "| epoch | linear top-1 | linear top-3 | " + " | ".join(f"kNN top-1 (k={k})" for k in ks) + " |",
        "|---:|---:|---:|" + "---:|" * len(ks),
    ]
    for row in curve["rows"]:
        cells = [row["epoch"], *(percent(row[key]) for key in ("linear_top1", "linear_top3"))]
        cells += [percent(row["knn_top1"][k]) for k in ks]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    lines += [
        "",
        f"## Linear probe per class, epoch {curve['per_class_epoch']}",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in curve["per_class"]:
        scores = " | ".join(percent(row[key]) for key in ("precision", "recall", "f1"))
        lines.append(f"| {row['name']} | {scores} | {row['support']} |")
    return "\n".join(lines) + "\n"


def format_snapshot_rows(curve: dict[str, Any]) -> str:
    """One line per snapshot for the terminal: `epoch N: linear X, kNN@k Y, ...` (percent)."""
    lines = []
    for row in curve["rows"]:
        knn = ", ".join(f"kNN@{k} {percent(value)}" for k, value in row["knn_top1"].items())
        lines.append(f"epoch {row['epoch']:>4}: linear {percent(row['linear_top1'])}, {knn}")
    return "\n".join(lines)


def format_probe_report(results: dict[str, Any]) -> str:
    """What `scripts/linear_probe.py` prints at the end: [`format_results_table`], then the files it wrote."""
    arguments = results.get("arguments") or {}
    folder = Path(arguments.get("output_dir") or results["model_name_or_path"])
    written = [folder / RESULTS_FILE, *(folder / file for file in (results.get("plots") or {}).values())]
    card = folder / MODEL_CARD_FILE
    if arguments.get("write_card", True) and card.is_file() and is_generated(card):
        written.append(card)
    lines = [format_results_table(results), "", f"Wrote into {folder}/:"]
    lines += [f"  {path.name}" for path in written]
    lines.append(
        f"  {FEATURE_CACHE_DIR}/ (the features, reused by the next run with the same model and data)"
    )
    return "\n".join(lines)
