"""`scripts/run_experiments.py`'s command line: the runner's arguments ([`hf_simclr.experiments.arguments`])
read as one [`Command`], the flags of a variant (pretraining's, the evaluation's, a few of Trainer's) answered
with the runner's way of giving them, and what it says at the end."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from ..command import Command
from ..evaluation.arguments import LinearProbeArguments
from ..folder_format import SUMMARY_JSON, SUMMARY_MARKDOWN
from ..pretraining.arguments import PRETRAINING_ARGUMENTS
from .arguments import ExperimentArguments

if TYPE_CHECKING:
    from .runner import RunReport


def runner_elsewhere_flags() -> tuple[tuple[str, str], ...]:
    """The flags people type here that belong to each variant, with the runner's way of giving them: a setting
    of pretraining (`--num_train_epochs 1`: `--override num_train_epochs=1`) or of the evaluation (the grid
    file's `evaluation:`), and a few of Trainer's."""
    own = {f.name for f in fields(ExperimentArguments)}
    pretraining = [f.name for arguments in PRETRAINING_ARGUMENTS for f in fields(arguments)]
    evaluation = [f.name for f in fields(LinearProbeArguments) if f.name not in pretraining]
    flags = {
        **{
            name: f"evaluation settings go in the grid file, under evaluation: {{{name}: ...}}"
            for name in evaluation
        },
        **{name: f"a setting of each variant: give --override {name}=VALUE" for name in pretraining},
        "knn_k": "the evaluation's neighbours go in the grid file (evaluation: {knn_k: [10, 200]}); --override "
        "knn_k=K sets each pretraining's kNN monitor",
        "output_dir": "give --results_dir (results and the table, no weights) and --work_dir (the model folders)",
        "config": "give the grid file first: run_experiments.py GRID --results_dir DIR",
        "bf16": "give --override mixed_precision=bf16 (auto, the default, is bf16 on a GPU)",
        "save_total_limit": "give --override checkpoints_total_limit=K (the grids' protocol saves no checkpoint: "
        "checkpointing_steps: none)",
        "do_train": "each variant is pretrained, then evaluated: leave it out",
        "do_eval": "each variant is pretrained, then evaluated: leave it out",
    }
    return tuple((name, advice) for name, advice in flags.items() if name not in own)


def format_run_report(report: RunReport) -> str:
    """What `scripts/run_experiments.py` prints at the end: the variants run, skipped and not started, and the
    files it wrote, each with its folder (`--summary_only`: the table alone)."""
    lines = []
    if report.work_dir is not None:  # a run, not --summary_only
        lines.append(
            f"Ran {report.ran or 'no variant'}; skipped (results exist) {report.skipped}; not started "
            f"{report.not_started}."
        )
    lines.append(f"Wrote into {report.results_dir}/:")
    lines += [f"  {name}/ (its results, training arguments, log and wall times)" for name in report.ran]
    lines.append(f"  {SUMMARY_MARKDOWN}, {SUMMARY_JSON} (the table of {len(report.summary)} variant(s))")
    if report.table is not None:
        lines.append(f"Also wrote the table into {report.table}.")
    if report.ran:
        lines.append(f"Model folders (weights): {report.work_dir}/ ({', '.join(report.ran)}).")
    return "\n".join(lines)


# `scripts/run_experiments.py`: the grid file first (or `--grid`), then flags.
RUN_EXPERIMENTS = Command(
    "run_experiments.py",
    (ExperimentArguments,),
    "hf_simclr.experiments.runner:run_experiments",
    first_positional="grid",
    report="hf_simclr.experiments.command:format_run_report",
    known_elsewhere=runner_elsewhere_flags(),
    interrupted="finished variants are kept in --results_dir: run the same command again to continue the grid.",
)
