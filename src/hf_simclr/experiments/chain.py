"""The few-labels chain of a variant (SimCLR v2's recipe): after its pretraining and probe, every fine-tuning run
at every label fraction, then every distillation from its teacher, then the semi-supervised table; each run
through its script's own job (`finetune`, `distill`), into the variant's work folder."""

from __future__ import annotations

import time
from pathlib import Path

from ..finetuning.distill import distill
from ..finetuning.run import finetune
from ..folder_format import FINETUNE_RESULTS_FILE, MODEL_CARD_FILE
from .grid import Grid, VariantArguments, chain_arguments

# What of each chain run the variant's results folder keeps (never weights).
CHAIN_COPIED_FILES = (FINETUNE_RESULTS_FILE, MODEL_CARD_FILE)


def run_chain(
    grid: Grid, name: str, arguments: VariantArguments, chain_dir: Path
) -> tuple[list[Path], float]:
    """Fine-tune and distil variant `name` at each of the chain's fractions, into `chain_dir/<run>-<pct>`.

    An earlier attempt's run folders are replaced (the variant's work folder is the runner's own scratch).

    Returns:
        The run folders (each with its `finetune_results.json`), fine-tuning first, and the seconds it took.
    """
    started, folders = time.perf_counter(), []
    for fraction in grid.chain.label_fractions:
        for run in chain_arguments(grid, arguments, fraction, chain_dir):
            print(f"[runner] {name}: {run.job} {run.name}")
            run.arguments.overwrite_output_dir = True
            job = finetune if run.job == "finetune" else distill
            job(run.arguments, run.training)
            folders.append(Path(run.training.output_dir))
    return folders, round(time.perf_counter() - started, 1)
