"""What `--help` shows: each script's own settings, and how the positional first item is given."""

from __future__ import annotations

import dataclasses
import re

import pytest

from hf_simclr.benchmark.command import BENCHMARK
from hf_simclr.evaluation.arguments import LinearProbeArguments, ProbeArguments
from hf_simclr.evaluation.command import LINEAR_PROBE, SNAPSHOT_CURVE
from hf_simclr.experiments.command import RUN_EXPERIMENTS
from hf_simclr.finetuning.command import DISTILL, FINETUNE
from hf_simclr.hub import PUSH
from hf_simclr.pretraining.command import PRETRAIN
from hf_simclr.reports.command import RENDER, TABLE
from hf_simclr.timm_export import EXPORT

COMMANDS = (
    PRETRAIN,
    LINEAR_PROBE,
    SNAPSHOT_CURVE,
    FINETUNE,
    DISTILL,
    RUN_EXPERIMENTS,
    EXPORT,
    PUSH,
    TABLE,
    RENDER,
    BENCHMARK,
)

PROBE_ONLY = {f.name for f in dataclasses.fields(LinearProbeArguments)} - {
    f.name for f in dataclasses.fields(ProbeArguments)
}


def test_the_snapshot_curve_lists_none_of_the_full_evaluations_options():
    # Before: --plots, --skip_baseline, --write_card, --label_fractions and --features were listed and taken.
    # model_revision too: the curve reads local snapshot folders, which have no revisions
    assert PROBE_ONLY == {
        "features",
        "label_fractions",
        "plots",
        "skip_baseline",
        "write_card",
        "model_revision",
    }
    snapshot_help, probe_help = SNAPSHOT_CURVE.parser().format_help(), LINEAR_PROBE.parser().format_help()
    for name in PROBE_ONLY:
        assert f"--{name} " not in snapshot_help and f"--{name} " in probe_help, name


def test_the_snapshot_curve_refuses_a_probe_only_option(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        SNAPSHOT_CURVE.parse(
            ["--model_name_or_path", str(tmp_path), "--dataset_name", "x", "--features", "z"]
        )
    assert exit.value.code == 2 and "--features" in capsys.readouterr().err


def test_the_runners_help_says_the_grid_is_given_first():
    assert "Given first, without the flag" in RUN_EXPERIMENTS.parser().format_help()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.name)
def test_the_usage_names_every_required_option_and_the_help_marks_it(command):
    # Before: `usage: linear_probe.py [-h] [options]`, and each required option read `(default: None)`.
    text = command.parser().format_help()
    assert "(default: None)" not in text
    required = re.findall(r" --(\w+) [A-Z_]+", command.usage())
    positional = command.first_positional not in (None, "recipe")  # the grid: GRID in the usage
    assert text.count("(required)") == len(required) + positional, (command.usage(), text)
    options = re.split(r"\n  (?=-)", text)  # one block per option: its spellings, then its help
    for name in required:
        assert any(block.startswith(f"--{name} ") and "(required)" in block for block in options), name


def test_the_required_options_are_those_the_parse_refuses_to_go_without(tmp_path, capsys):
    assert EXPORT.usage() == "export_timm.py [-h] --model_dir MODEL_DIR [options]"
    assert LINEAR_PROBE.usage() == (
        "linear_probe.py [-h] --model_name_or_path MODEL_NAME_OR_PATH --dataset_name DATASET_NAME [options]"
    )
    for command, argv, named in (
        (EXPORT, [], "--model_dir"),
        (LINEAR_PROBE, ["--model_name_or_path", str(tmp_path)], "--dataset_name"),
        (
            FINETUNE,
            ["--model_name_or_path", str(tmp_path), "--output_dir", str(tmp_path / "o")],
            "--dataset_name",
        ),
        (BENCHMARK, [], "--mode"),
    ):
        with pytest.raises(SystemExit) as exit:
            command.parse(argv)
        assert exit.value.code == 2 and named in capsys.readouterr().err, command.name


def test_the_negative_of_a_switch_is_described_as_its_opposite():
    # Before: `--no_write_card  Re-render README.md from results.json ... (default: False)`.
    text = re.sub(r"\s+", " ", PUSH.parser().format_help())
    assert "--no_write_card, --no-write-card The opposite of --write_card." in text
