"""What `--help` shows: each script's own settings, and how the positional first item is given."""

from __future__ import annotations

import dataclasses

import pytest

from hf_simclr.evaluation.arguments import LINEAR_PROBE, SNAPSHOT_CURVE, LinearProbeArguments, ProbeArguments
from hf_simclr.experiments.arguments import RUN_EXPERIMENTS

PROBE_ONLY = {f.name for f in dataclasses.fields(LinearProbeArguments)} - {
    f.name for f in dataclasses.fields(ProbeArguments)
}


def test_the_snapshot_curve_lists_none_of_the_full_evaluations_options():
    # Before: --plots, --skip_baseline, --write_card, --label_fractions and --features were listed and taken.
    assert PROBE_ONLY == {"features", "label_fractions", "plots", "skip_baseline", "write_card"}
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
