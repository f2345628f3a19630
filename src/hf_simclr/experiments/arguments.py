"""Arguments of the experiment runner (`scripts/run_experiments.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..arguments import (
    READ_DIR_OR_HUB,
    READ_FILE,
    WRITE_DIR,
    WRITE_FILE,
    Command,
    UsageError,
    check_arguments,
    check_paths,
    positive,
)
from ..evaluation.arguments import LinearProbeArguments
from ..pretraining.arguments import PRETRAINING_ARGUMENTS


@dataclass
class ExperimentArguments:
    """Arguments of `scripts/run_experiments.py` (and of [`run_experiments`])."""

    grid: str = field(
        metadata={
            "help": "The grid file (YAML): base recipe, overrides, variants, sections. Given first, without "
            "the flag: `run_experiments.py configs/grids/ablations.yaml --results_dir ...`."
        }
    )
    results_dir: str = field(metadata={"help": "Results of each variant and the table (no weights)."})
    work_dir: str = field(
        default="runs/experiments", metadata={"help": "Model folders (weights) and decoded data."}
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Data for every variant (e.g. a local CIFAR-10 copy)."}
    )
    variants: list[str] | None = field(
        default=None, metadata={"help": "Run only these variants (default: all)."}
    )
    override: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Settings for every variant, KEY=VALUE, e.g. num_train_epochs=1 max_train_samples=512."
        },
    )
    time_budget_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Do not start a variant that would end after this many minutes, estimated from the variants "
            "run so far (the first always starts)."
        },
    )
    table: str | None = field(
        default=None, metadata={"help": "Also write the markdown table here (e.g. results/ablations.md)."}
    )
    summary_only: bool = field(default=False, metadata={"help": "Rewrite the table from the results only."})

    def __post_init__(self) -> None:
        check_paths(
            self,
            {
                "grid": READ_FILE,
                "results_dir": WRITE_DIR,
                "work_dir": WRITE_DIR,
                "dataset_name": READ_DIR_OR_HUB,
                "table": WRITE_FILE,
            },
        )
        malformed = [item for item in self.override if "=" not in item or item.startswith("=")]
        check_arguments(
            self,
            {
                "override": (
                    not malformed,
                    f"KEY=VALUE items, e.g. num_train_epochs=1 (not {malformed[:1]})",
                ),
                "time_budget_minutes": (positive(self.time_budget_minutes), "> 0 minutes (unset: no budget)"),
            },
        )

    def check_typed(self, typed: set[str]) -> None:
        """Refuse with `--summary_only` the flags of a run, which it would not use (it rewrites the table from
        the results files)."""
        unused = [flag for flag in SETTINGS_OF_A_RUN if flag in typed]
        if self.summary_only and unused:
            raise UsageError(
                f"--{unused[0]} is a setting of a run, and --summary_only runs nothing (it rewrites the table "
                f"from the results in --results_dir): leave --{unused[0]} out, or --summary_only to run the grid."
            )


# The flags --summary_only does not use: what the variants are run with.
SETTINGS_OF_A_RUN = ("work_dir", "dataset_name", "variants", "override", "time_budget_minutes")


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


# `scripts/run_experiments.py`: the grid file first (or `--grid`), then flags.
RUN_EXPERIMENTS = Command(
    "run_experiments.py",
    (ExperimentArguments,),
    "hf_simclr.experiments.runner:run_experiments",
    first_positional="grid",
    report="hf_simclr.experiments.runner:format_run_report",
    known_elsewhere=runner_elsewhere_flags(),
    interrupted="finished variants are kept in --results_dir: run the same command again to continue the grid.",
)
