"""Arguments of the experiment runner (`scripts/run_experiments.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..arguments import check_arguments, positive
from ..conditions import Applies, setting_is
from ..paths import READ_DIR_OR_HUB, READ_FILE, WRITE_DIR, WRITE_FILE, check_paths


@dataclass
class ExperimentArguments:
    """Arguments of `scripts/run_experiments.py` (and of [`run_experiments`])."""

    # What the variants are run with: --summary_only runs nothing (it rewrites the table from the results).
    APPLIES: ClassVar[dict[str, Applies]] = {
        name: Applies(
            setting_is("summary_only", False, among=(False, True)),
            "--summary_only runs nothing: it rewrites the table from the results in --results_dir",
        )
        for name in ("work_dir", "dataset_name", "variants", "override", "time_budget_minutes")
    }

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
