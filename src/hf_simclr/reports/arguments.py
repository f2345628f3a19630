"""Arguments of the commands that write reports into folders (`scripts/render_cards.py`,
`scripts/semi_supervised_table.py`). Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..folder_format import MODEL_CARD_FILE, PUBLISHED_FILE
from ..paths import READ_DIR, READ_DIR_OR_FILE, READ_FILE, WRITE_DIR, check_path, check_paths

# Where the repository's own runs found their local datasets (beside the repository), read if it is there.
DEFAULT_DATASET_ROOT = "../shared/datasets"


@dataclass
class RenderArguments:
    """Arguments of `scripts/render_cards.py` (run from the repository's root)."""

    results_dir: str = field(
        default="results",
        metadata={
            "help": f"Published runs: <name>/ folders, {PUBLISHED_FILE} (name: Hub repository, and the Hub "
            f"datasets of local copies) and {MODEL_CARD_FILE} (a block `results/<name>` per run is written)."
        },
    )
    cards_dir: str = field(default="model_cards", metadata={"help": "Where <name>.md goes."})
    readme: str | None = field(
        default=None,
        metadata={
            "help": f"The repository's README, whose blocks `results/<name> in brief` are written (default: the "
            f"{MODEL_CARD_FILE} beside --results_dir)."
        },
    )
    dataset_root: str | None = field(
        default=DEFAULT_DATASET_ROOT,
        metadata={"help": "Folder holding the local datasets the runs recorded (by folder name), if here."},
    )

    def __post_init__(self) -> None:
        check_paths(self, {"results_dir": READ_DIR, "cards_dir": WRITE_DIR})
        check_path("results_dir", str(Path(self.results_dir) / PUBLISHED_FILE), READ_FILE)
        check_path("readme", self.readme, READ_FILE)
        if (
            self.dataset_root != DEFAULT_DATASET_ROOT
        ):  # the default is read where it exists; another must exist
            check_path("dataset_root", self.dataset_root, READ_DIR)


@dataclass
class TableArguments:
    """Arguments of `scripts/semi_supervised_table.py`."""

    finetune_runs: list[str] = field(
        default_factory=list,
        metadata={"help": "Output folders of scripts/finetune.py (or their finetune_results.json)."},
    )
    probe_run: str | None = field(
        default=None,
        metadata={"help": "The probe's output folder (or its results.json): the linear-probe row."},
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "Where the table goes; default --probe_run."}
    )

    def __post_init__(self) -> None:
        check_paths(
            self, {"finetune_runs": READ_DIR_OR_FILE, "probe_run": READ_DIR_OR_FILE, "output_dir": WRITE_DIR}
        )
