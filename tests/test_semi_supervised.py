"""The semi-supervised table from results files: rows, missing numbers, and runs that cannot be compared."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hf_simclr.folder_format import SEMI_SUPERVISED_FILE, SEMI_SUPERVISED_TABLE
from hf_simclr.reports.semi_supervised import (
    collect_semi_supervised,
    format_semi_supervised_table,
    write_semi_supervised_table,
)

DATASET = {
    "name": "cifar10",
    "config": None,
    "revision": None,
    "train_split": "train",
    "eval_split": "test",
    "max_train_samples": None,
    "max_eval_samples": None,
}


def finetuned(init: str, fraction: float, top1: float, top3: float, size: int, **dataset) -> dict:
    return {
        "init": init,
        "label_fraction": fraction,
        "num_train_samples": size,
        "top1": top1,
        "top3": top3,
        "model_name_or_path": "runs/simclr",
        "dataset": {**DATASET, "subset_seed": 0, **dataset},
        "split_sizes": {"eval": 10000},
    }


PROBE = {
    "model_name_or_path": "runs/simclr",
    "seed": 0,
    "dataset": DATASET,
    "split_sizes": {"train": 50000, "eval": 10000},
    "label_fraction": {
        "0.01": {"linear_top1": 0.6686, "linear_top5": 0.9673, "num_train_samples": 500},
        "0.1": {"linear_top1": 0.7611, "linear_top3": 0.9364, "num_train_samples": 5000},
    },
}
RUNS = [
    ("ft-simclr-1", finetuned("simclr", 0.01, 0.6123, 0.8456, 500)),
    ("ft-simclr-10", finetuned("simclr", 0.1, 0.774, 0.948, 5000)),
    ("ft-random-10", finetuned("random", 0.1, 0.382, 0.601, 5000)),
]


def test_table_rows_come_from_the_results_and_missing_numbers_show_a_dash() -> None:
    table = collect_semi_supervised(RUNS, ("probe/results.json", PROBE))
    text = format_semi_supervised_table(table)
    lines = text.splitlines()
    assert lines[0] == (
        "| Method | 1% labels (500 images) top-1 | top-3 | 10% labels (5000 images) top-1 | top-3 |"
    )
    assert "| Fine-tune from SimCLR, from h (v1) | 61.23 | 84.56 | 77.40 | 94.80 |" in lines
    assert "| Fine-tune from random init | not run | not run | 38.20 | 60.10 |" in lines  # no 1% run
    assert (
        "| Distilled into a smaller student | not run | not run | not run | not run |" in lines
    )  # every row
    assert "| Linear probe (frozen SimCLR features) | 66.86 | - | 76.11 | 93.64 |" in lines  # no top-3 at 1%
    assert "10000 images of split `test` of `cifar10`" in text


def test_write_reads_run_folders_and_writes_json_and_markdown(tmp_path: Path, monkeypatch, capsys) -> None:
    runs = []
    for name, results in RUNS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "finetune_results.json").write_text(json.dumps(results))
        runs.append(str(tmp_path / name))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "results.json").write_text(json.dumps(PROBE))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    import semi_supervised_table

    monkeypatch.setattr(
        sys,
        "argv",
        ["semi_supervised_table.py", "--probe_run", str(tmp_path / "model"), "--finetune_runs", *runs],
    )
    semi_supervised_table.main()
    written = json.loads((tmp_path / "model" / SEMI_SUPERVISED_FILE).read_text())
    assert len(written["entries"]) == 5 and written["fractions"] == [0.01, 0.1]
    markdown = (tmp_path / "model" / SEMI_SUPERVISED_TABLE).read_text()
    table = format_semi_supervised_table(written)
    assert markdown.startswith("<!-- Written by hf_simclr") and markdown.endswith(table)
    printed = capsys.readouterr().out
    assert table in printed and f"wrote {tmp_path / 'model' / SEMI_SUPERVISED_TABLE}" in printed  # says where
    assert written["entries"][0]["source"] == str(tmp_path / "ft-simclr-1" / "finetune_results.json")
    with pytest.raises(ValueError, match="finetune_results.json not found"):
        write_semi_supervised_table([tmp_path / "model"], None, tmp_path / "out")


@pytest.mark.parametrize(
    "runs, message",
    [
        (
            RUNS + [("again", RUNS[1][1])],
            r"two results for Fine-tune from SimCLR, from h \(v1\) at 10% of the labels: ft-simclr-10 and again",
        ),
        (
            [RUNS[0], ("other", finetuned("random", 0.1, 0.3, 0.5, 5000, max_eval_samples=1000))],
            r"other and ft-simclr-1 were not trained and scored on the same data \(max_eval_samples: 1000 vs None\)",
        ),
        (
            [RUNS[1], ("small", finetuned("random", 0.1, 0.3, 0.5, 4000))],
            r"at 10% of the labels small trained on 4000 images but ft-simclr-10 on 5000",
        ),
        (
            [("elsewhere", {**RUNS[1][1], "model_name_or_path": "runs/other"})],
            r"elsewhere fine-tuned runs/other, but probe probed runs/simclr",
        ),
        ([], "no results to tabulate"),
    ],
)
def test_runs_that_cannot_be_compared_are_refused(runs, message) -> None:
    probe = ("probe", PROBE) if runs else None
    with pytest.raises(ValueError, match=message):
        collect_semi_supervised(runs, probe)
