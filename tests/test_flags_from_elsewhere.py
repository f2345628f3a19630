"""Flags people bring from Trainer and the accelerate examples get this script's way of saying them, and a
misspelt option its closest one, before any work (exit 2)."""

from __future__ import annotations

import re

import pytest

from hf_simclr.evaluation.arguments import LINEAR_PROBE, SNAPSHOT_CURVE
from hf_simclr.pretraining.arguments import PRETRAIN

# Each script with such a map, and the arguments it requires (so that only the flag is wrong).
REQUIRED = {
    PRETRAIN: [],
    LINEAR_PROBE: ["--model_name_or_path", "runs/x", "--dataset_name", "data/x"],
    SNAPSHOT_CURVE: ["--model_name_or_path", "runs/x", "--dataset_name", "data/x", "--snapshots", "runs/x"],
}
CASES = [(command, flag, advice) for command in REQUIRED for flag, advice in command.known_elsewhere]


def refusal(capsys, *argv: str, command=PRETRAIN) -> str:
    with pytest.raises(SystemExit) as exit_info:
        command.parse([*argv, *REQUIRED[command]])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "flag", "advice"), CASES, ids=[f"{command.name}-{flag}" for command, flag, _ in CASES]
)
def test_a_flag_of_another_tool_is_answered_with_this_scripts_equivalent(capsys, command, flag, advice):
    message = refusal(capsys, f"--{flag}", "4", command=command)
    assert f"--{flag} is not an option of {command.name}: {advice}." in message
    assert "'4'" not in message  # the flag's value is not reported as a stray item
    options = {name for name in command.parser()._option_string_actions}
    named = set(re.findall(r"--[a-z_]+", advice))
    assert named <= options, f"the advice names flags {command.name} does not have: {named - options}"


def test_the_evaluation_answers_the_flags_people_bring_from_trainer(capsys):
    assert "give --batch_size N" in refusal(
        capsys, "--per_device_eval_batch_size", "256", command=LINEAR_PROBE
    )


def test_an_abbreviation_is_not_taken_for_a_longer_option(capsys):
    # Before: argparse took --max_train 5 for --max_train_samples, and refused --model as ambiguous.
    assert "did you mean --max_train_samples?" in refusal(capsys, "--max_train", "5")
    assert "give --model_name_or_path" in refusal(capsys, "--model", "m", command=LINEAR_PROBE)


def test_gradient_accumulation_is_answered_with_the_chunks_and_why(capsys):
    message = refusal(capsys, "--gradient_accumulation_steps", "8")
    assert "--chunk_size N" in message and "negatives" in message


def test_a_misspelt_option_gets_the_closest_one_and_a_stray_value_is_named(capsys):
    message = refusal(capsys, "--per_device_train_batchsize", "64", "--knn_k", "5", "oops")
    assert "--per_device_train_batchsize is not an option of pretrain.py; did you mean " in message
    assert "--per_device_train_batch_size?" in message
    assert "'oops' belongs to no option" in message
    assert "--help lists them" in refusal(capsys, "--something_else_entirely")
