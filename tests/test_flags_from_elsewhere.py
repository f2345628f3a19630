"""Flags people bring from Trainer and the accelerate examples get this script's way of saying them, and a
misspelt option its closest one, before any work (exit 2)."""

from __future__ import annotations

import re

import pytest

from hf_simclr.benchmark.command import BENCHMARK
from hf_simclr.evaluation.command import LINEAR_PROBE, SNAPSHOT_CURVE
from hf_simclr.experiments.command import RUN_EXPERIMENTS
from hf_simclr.finetuning.command import DISTILL, FINETUNE
from hf_simclr.hub import PUSH
from hf_simclr.pretraining.command import PRETRAIN
from hf_simclr.timm_export import EXPORT

# Each script with such a map, and the arguments it requires (so that only the flag is wrong).
REQUIRED = {
    PRETRAIN: [],
    LINEAR_PROBE: ["--model_name_or_path", "runs/x", "--dataset_name", "data/x"],
    SNAPSHOT_CURVE: ["--model_name_or_path", "runs/x", "--dataset_name", "data/x", "--snapshots", "runs/x"],
    RUN_EXPERIMENTS: ["grid.yaml", "--results_dir", "results/x"],
    EXPORT: ["--model_dir", "runs/x"],
    PUSH: ["--model_dir", "runs/x", "--repo_id", "org/x"],
    BENCHMARK: ["--mode", "data"],
    FINETUNE: ["--model_name_or_path", "runs/x", "--dataset_name", "data/x", "--output_dir", "runs/y"],
    DISTILL: ["--teacher", "runs/x", "--dataset_name", "data/x", "--output_dir", "runs/y"],
}
CASES = [(command, flag, advice) for command in REQUIRED for flag, advice in command.known_elsewhere]


def refusal(capsys, *argv: str, command=PRETRAIN) -> str:
    with pytest.raises(SystemExit) as exit_info:
        command.parse([*REQUIRED[command], *argv])  # the required first: a grid file is given first
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
    named = set(re.findall(r"--[a-z][a-z0-9_]*", advice))
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


def test_the_runner_answers_a_variants_setting_with_its_override(capsys):
    # Before: `--num_train_epochs 1` to the runner got "did you mean --time_budget_minutes?"-like answers or none.
    message = refusal(capsys, "--num_train_epochs", "1", "--label_fractions", "0.1", command=RUN_EXPERIMENTS)
    assert (
        "--num_train_epochs is not an option of run_experiments.py: a setting of each variant: give "
        in message
    )
    assert "--override num_train_epochs=VALUE" in message
    assert (
        "--label_fractions is not an option of run_experiments.py: evaluation settings go in the grid"
        in message
    )
    assert dict(RUN_EXPERIMENTS.known_elsewhere)["save_total_limit"].startswith(
        "give --override checkpoints_total"
    )


@pytest.mark.parametrize(
    ("command", "flag", "advice"),
    [
        (PUSH, "hub_model_id", "give --repo_id user/name"),
        (PUSH, "hub_private_repo", "give --private"),
        (EXPORT, "model_name_or_path", "give --model_dir"),
        (EXPORT, "push_to_hub", "scripts/push_to_hub.py uploads"),
        (BENCHMARK, "output", "give --output_json FILE"),
        (BENCHMARK, "chunk_size", "give --memory_settings BATCH:CHUNK"),
        (SNAPSHOT_CURVE, "snapshot_epochs", "--snapshots FOLDER"),
        (SNAPSHOT_CURVE, "epochs", "--snapshots FOLDER"),  # the curve's epochs, not the probe fit's
        (RUN_EXPERIMENTS, "output_dir", "give --results_dir"),
    ],
    ids=lambda value: getattr(value, "name", value),
)
def test_the_other_scripts_answer_the_flags_their_users_type(capsys, command, flag, advice):
    # Before: each was "not an option; --help lists them", or a close option that was not the same thing.
    message = refusal(capsys, f"--{flag}", "x", command=command)
    assert f"--{flag} is not an option of {command.name}: " in message and advice in message
