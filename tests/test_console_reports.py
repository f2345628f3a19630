"""What the scripts print at the end: where they wrote, each file named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hf_simclr.reports.tables import format_probe_report


def test_the_probe_says_which_files_it_wrote_and_where(tiny_probe):
    # Before: the table only; the reader had to look for results.json, the plots and the card.
    _, results, model_dir = tiny_probe
    report = format_probe_report(results)
    assert f"Wrote into {model_dir}/:" in report
    named = re.findall(r"^  (\S+)", report.split("Wrote into", 1)[1], flags=re.MULTILINE)
    assert {"results.json", "README.md", "feature_cache/"} <= set(named)
    assert set(results["plots"].values()) <= set(named)
    for name in named:
        assert (Path(model_dir) / name).exists(), name


@pytest.mark.slow  # a fine-tuning run, through the script's command
def test_finetuning_says_what_it_wrote_and_draws_no_bars_in_a_redirected_log(tmp_path, capfd):
    # Before: one line of scores, after Trainer's bars and "Writing model shards" drawn with cursor movements.
    from builders import save_tiny_dataset, save_tiny_model

    from hf_simclr.finetuning import FINETUNE

    model, data = save_tiny_model(tmp_path / "model"), save_tiny_dataset(tmp_path / "data", per_class=(4, 2))
    output_dir = tmp_path / "finetuned"
    argv = ["--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(output_dir)]
    argv += [
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--use_cpu",
        "--report_to",
        "none",
    ]
    FINETUNE.main([*argv, "--save_strategy", "epoch"])
    out, err = capfd.readouterr()
    assert "\x1b[A" not in out + err and "it/s]" not in out + err, err
    report = out.split("Wrote into", 1)[1]
    assert report.startswith(f" {output_dir}/:")
    named = re.findall(r"([\w.-]+\.(?:json|safetensors)|checkpoint-\d+/)", report)
    assert {"finetune_results.json", "model.safetensors", "config.json", "checkpoint-3/"} <= set(named), (
        report
    )
    for name in named:
        assert (output_dir / name).exists(), name
