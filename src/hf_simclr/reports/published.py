"""The published runs in the repository's own pages, written from their folders' files.

For each run that `results/published.yaml` lists, `scripts/render_cards.py` writes, besides its model card, two
blocks: one of `results/README.md` (the run's results and compute tables, the kNN monitor's curve, when it ran
and with what, and what its `results.json` lacks against today's probe) and one of the README's "Results and
speed" (the run in brief). Each block sits between two marker lines ([`block_markers`]); the text around the
blocks is the authors' and holds no number of the runs. The tables are the model card's own
([`hf_simclr.reports.card.results_rows`], [`hf_simclr.reports.card.compute_rows`]): the card,
`results/README.md` and the README show the same numbers in the same way.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from ..arguments import UsageError
from ..folder_format import (
    CONFIG_FILE,
    LOG_HISTORY_FILE,
    MODEL_CARD_FILE,
    RESULTS_FILE,
    TRAINING_ARGS_FILE,
    WALL_TIMES_FILE,
    WEIGHTS_FILES,
    write_text_atomically,
)
from ..model_folder import read_json, read_json_lines
from .card import WALL_TIME_NOTE, compute_rows, results_rows, wall_time, whole_commands
from .naming import describe_dataset
from .tables import percent

# The fields of `results.json` that today's probe writes (`hf_simclr.evaluation.probe`, run with --plots):
# tests/test_published_results.py checks them against a run of it. `*` stands for each label fraction.
PROBE_FIELDS = frozenset(
    {
        *("arguments", "class_names", "confusion_matrix", "dataset", "device", "eval_view", "feature_dim"),
        *("features", "knn_temperature", "knn_top1", "label_fraction", "label_fraction_skipped"),
        *("linear_probe", "linear_top1", "linear_top3", "linear_top5", "model_config", "model_name_or_path"),
        *("model_revision", "per_class", "plots", "random_init_baseline", "seed", "split_sizes"),
        *("timings_seconds", "wall_time_seconds", "z", "z_skipped"),
        *(f"label_fraction.*.{key}" for key in ("linear_top1", "linear_top3", "linear_top5")),
        *(f"label_fraction.*.{key}" for key in ("num_train_samples", "weight_decay")),
        *(f"random_init_baseline.{key}" for key in ("linear_top1", "linear_top3", "linear_top5")),
        *(f"random_init_baseline.{key}" for key in ("knn_top1", "weight_decay")),
    }
)
TEXT_WIDTH = 110  # the pages' prose is wrapped as the authors wrap theirs


def result_fields(results: dict[str, Any]) -> set[str]:
    """The fields of a `results.json`, named as in [`PROBE_FIELDS`]: its keys, each label fraction's
    (`label_fraction.*.linear_top1`) and the random-init baseline's (`random_init_baseline.linear_top1`)."""
    fields = set(results)
    for fraction in (results.get("label_fraction") or {}).values():
        fields |= {f"label_fraction.*.{key}" for key in fraction}
    fields |= {f"random_init_baseline.{key}" for key in results.get("random_init_baseline") or {}}
    return fields


def against_todays_probe(results: dict[str, Any]) -> tuple[list[str], dict[str, str | None]]:
    """What a `results.json` of an older probe lacks and keeps, against [`PROBE_FIELDS`].

    Returns:
        (the fields today's probe writes that `results` lacks, sorted; `{field: today's field}` for those it
        holds that today's probe does not write, with the field of today's that holds the same values, or None)
    """
    fields = result_fields(results)
    today = sorted(PROBE_FIELDS & set(results))
    legacy = {
        field: next((same for same in today if results[same] == results.get(field)), None)
        for field in sorted(fields - PROBE_FIELDS)
    }
    return sorted(PROBE_FIELDS - fields), legacy


def fields_note(folder: Path, results: dict[str, Any]) -> str | None:
    """A sentence on the fields an older probe did not write (or wrote under another name), and why they stay
    so; None for a `results.json` with today's fields."""
    missing, legacy = against_todays_probe(results)
    if not missing and not legacy:
        return None
    parts = [f"lacks {_codes(missing)}, which today's `scripts/linear_probe.py` writes"] if missing else []
    if legacy:
        kept = [
            f"`{old}`" + (f" (the values of today's `{same}`)" if same else "")
            for old, same in legacy.items()
        ]
        parts.append(f"keeps {', '.join(kept)}, which the probe no longer writes")
    if any((folder / name).is_file() for name in WEIGHTS_FILES):
        after = f" Run `scripts/linear_probe.py` on the folder again to have today's {RESULTS_FILE}."
    else:
        after = (
            " The folder keeps no weights, so the probe cannot be run on them again: the missing fields stay "
            "missing (nothing was filled in by hand)."
        )
    return f"`{RESULTS_FILE}` was written by an older version of the probe: it {'; it '.join(parts)}.{after}"


def _codes(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


# ----------------------------------------------------------------------------------------------
# The two blocks of one run
# ----------------------------------------------------------------------------------------------


def _records(folder: Path) -> dict[str, Any]:
    """The files of a published results folder that the pages read (results.json must be there)."""
    results = read_json(folder / RESULTS_FILE)
    if results is None:
        raise UsageError(f"{folder} has no {RESULTS_FILE}: its pages are written from it.")
    log = folder / LOG_HISTORY_FILE
    return {
        "results": results,
        "training_args": read_json(folder / TRAINING_ARGS_FILE) or {},
        "config": read_json(folder / CONFIG_FILE) or {},
        "wall_times": read_json(folder / WALL_TIMES_FILE) or {},
        "log": read_json_lines(log) if log.is_file() else [],
    }


def _dataset_text(results: dict[str, Any], dataset_root: str | Path | None, sources: dict[str, str]) -> str:
    dataset = describe_dataset(results["dataset"]["name"], dataset_root, sources)
    return dataset["name"] + (f", a copy of `{dataset['source']}`" if dataset["source"] else "")


def _budget(training_args: dict[str, Any]) -> str:
    if (training_args.get("max_steps") or 0) > 0:
        return f"{training_args['max_steps']} steps"
    return f"{training_args.get('num_train_epochs', 0):g} epochs"


def _hardware(records: dict[str, Any]) -> str:
    wall_times = records["wall_times"]
    return records["training_args"].get("device") or wall_times.get("gpu") or wall_times.get("device") or "-"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _prose(text: str, indent: str = "") -> str:
    return textwrap.fill(text, TEXT_WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def results_block(
    folder: str | Path, dataset_root: str | Path | None = None, sources: dict[str, str] | None = None
) -> str:
    """The block of `results/README.md` for one published run, from its folder's files: the model card's
    results and compute tables, the kNN monitor's curve (`log_history.jsonl`), when and with what it ran,
    and what its `results.json` lacks ([`fields_note`])."""
    folder = Path(folder)
    records = _records(folder)
    results, training_args = records["results"], records["training_args"]
    split, sizes = results["dataset"], results["split_sizes"]
    lines = [
        _prose(
            f"Accuracies in percent on {_dataset_text(results, dataset_root, sources or {})}: training split "
            f"`{split['train_split']}` ({sizes['train']} images), evaluation split `{split['eval_split']}` "
            f"({sizes['eval']} images), probe seed {results['seed']} (`{folder.name}/{RESULTS_FILE}`):"
        ),
        "",
        *_table(("Evaluation", "This run", "Random-init encoder"), results_rows(results)),
        "",
        *_table(("Stage", "Hardware", "Wall time"), compute_rows(folder, training_args, results, None)),
        "",
        _prose(f"Pretraining ran {_budget(training_args)}. {WALL_TIME_NOTE}"),
    ]
    monitor = [record for record in records["log"] if "knn_top1" in record]
    if monitor:
        curve = ", ".join(f"{record['epoch']:g}: {percent(record['knn_top1'])}" for record in monitor)
        k = training_args.get("knn_k", "?")
        monitored = f"kNN top-1 of the monitor during pretraining (k={k}, `{LOG_HISTORY_FILE}`), in percent"
        lines += ["", _prose(f"{monitored}, at epoch {curve}.")]
    lines += ["", *_run_lines(folder, records)]
    return "\n".join(lines)


def _run_lines(folder: Path, records: dict[str, Any]) -> list[str]:
    """When and with what the run was made, as its files record it, and what its results.json lacks."""
    date = records["wall_times"].get("date")
    version = records["config"].get("transformers_version")
    ran = f"- Ran on {_hardware(records)}" + (f" on {date} (`{WALL_TIMES_FILE}`)" if date else "")
    ran += (
        f"; library versions recorded: transformers {version} (`{CONFIG_FILE}`), no other."
        if version
        else "; no library version recorded."
    )
    note = fields_note(folder, records["results"])
    return [_prose(ran, "  ")] + ([_prose(f"- {note}", "  ")] if note else [])


def readme_brief(
    folder: str | Path, dataset_root: str | Path | None = None, sources: dict[str, str] | None = None
) -> str:
    """The README's bullet for one published run: its headline accuracies and its pretraining's wall time."""
    folder = Path(folder)
    records = _records(folder)
    results, training_args = records["results"], records["training_args"]
    k, knn = next(iter(results["knn_top1"].items()))
    seconds = training_args.get("wall_time_seconds")
    time = wall_time(seconds, whole_commands(folder).get("pretraining")) if seconds is not None else "-"
    return _prose(
        f"- `results/{folder.name}/`: kNN top-1 (k={k}) {percent(knn)}% and linear probe top-1 "
        f"{percent(results['linear_top1'])}% on {_dataset_text(results, dataset_root, sources or {})}, "
        f"after {_budget(training_args)} of pretraining on {_hardware(records)}: {time}.",
        "  ",
    )


# ----------------------------------------------------------------------------------------------
# Blocks between marker lines
# ----------------------------------------------------------------------------------------------


def block_markers(key: str) -> tuple[str, str]:
    """The two lines around a generated block. Not the mark of a generated file: the file stays the authors'."""
    return (
        f"<!-- hf_simclr block {key}: scripts/render_cards.py writes it from the run's files; edit those. -->",
        f"<!-- end of hf_simclr block {key} -->",
    )


def replace_block(text: str, key: str, content: str, path: Path) -> str:
    """`text` with the block `key` holding `content`.

    Raises:
        UsageError: when `text` (of `path`) lacks the block's two marker lines.
    """
    start, end = block_markers(key)
    before, found, rest = text.partition(start + "\n")
    _, found_end, after = rest.partition(end)
    if not (found and found_end):
        raise UsageError(
            f"{path} has no block {key}: put these two lines where it goes, then run again:\n{start}\n{end}"
        )
    return f"{before}{start}\n{content.rstrip()}\n{end}{after}"


def write_published_pages(
    results_dir: str | Path,
    readme: str | Path,
    published: dict[str, dict[str, Any]],
    dataset_root: str | Path | None = None,
) -> list[Path]:
    """Write each published run's blocks into `<results_dir>/README.md` ([`results_block`], block
    `results/<name>`) and into `readme` ([`readme_brief`], block `results/<name> in brief`).

    Args:
        published: `{name: {"source_datasets": {...}, ...}}`, as `published.yaml` lists the runs.

    Returns:
        The two files written (both are checked for every block before either is written); none without runs.

    Raises:
        UsageError: for a page that is not there, or without the block of a published run.
    """
    if not published:
        return []
    index, readme = Path(results_dir) / MODEL_CARD_FILE, Path(readme)
    for flag, page in (("results_dir", index), ("readme", readme)):
        if not page.is_file():
            raise UsageError(f"--{flag}: {page} not found; the published runs' blocks go there.")
    index_text, readme_text = index.read_text(encoding="utf-8"), readme.read_text(encoding="utf-8")
    for name, entry in published.items():
        folder, sources = Path(results_dir) / name, entry.get("source_datasets")
        block = results_block(folder, dataset_root, sources)
        index_text = replace_block(index_text, f"results/{name}", block, index)
        brief = readme_brief(folder, dataset_root, sources)
        readme_text = replace_block(readme_text, f"results/{name} in brief", brief, readme)
    return [write_text_atomically(index, index_text), write_text_atomically(readme, readme_text)]
