"""Flags people bring from Trainer and the accelerate examples get this script's way of saying them, and a
misspelt option its closest one, before any work (exit 2)."""

from __future__ import annotations

import re

import pytest

from hf_simclr.pretraining.arguments import ELSEWHERE_FLAGS, PRETRAIN


def refusal(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        PRETRAIN.parse(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("flag", "advice"), ELSEWHERE_FLAGS, ids=[flag for flag, _ in ELSEWHERE_FLAGS])
def test_a_flag_of_another_tool_is_answered_with_this_scripts_equivalent(capsys, flag: str, advice: str):
    message = refusal(capsys, f"--{flag}", "4")
    assert f"--{flag} is not an option of pretrain.py: {advice}." in message
    assert "'4'" not in message  # the flag's value is not reported as a stray item
    options = {name for name in PRETRAIN.parser()._option_string_actions}
    named = set(re.findall(r"--[a-z_]+", advice))
    assert named <= options, f"the advice names flags pretrain.py does not have: {named - options}"


def test_gradient_accumulation_is_answered_with_the_chunks_and_why(capsys):
    message = refusal(capsys, "--gradient_accumulation_steps", "8")
    assert "--chunk_size N" in message and "negatives" in message


def test_a_misspelt_option_gets_the_closest_one_and_a_stray_value_is_named(capsys):
    message = refusal(capsys, "--per_device_train_batchsize", "64", "--knn_k", "5", "oops")
    assert "--per_device_train_batchsize is not an option of pretrain.py; did you mean " in message
    assert "--per_device_train_batch_size?" in message
    assert "'oops' belongs to no option" in message
    assert "--help lists them" in refusal(capsys, "--something_else_entirely")
