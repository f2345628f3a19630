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

    from hf_simclr.finetuning.command import FINETUNE

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


def grid_file(folder: Path) -> Path:
    """A grid of two variants of a one-line recipe, without results."""
    (folder / "recipe.yaml").write_text("optimizer: sgd\n")
    (folder / "grid.yaml").write_text("base: recipe.yaml\nvariants:\n  a: {}\n  b: {seed: 1}\n")
    return folder / "grid.yaml"


def test_the_runner_says_which_files_it_wrote_and_where(tmp_path, capsys):
    # Before: `--summary_only` printed nothing; a run ended with "table: <path>" alone.
    from hf_simclr.experiments.command import RUN_EXPERIMENTS, format_run_report
    from hf_simclr.experiments.runner import RunReport

    results = tmp_path / "results"
    RUN_EXPERIMENTS.main([str(grid_file(tmp_path)), "--results_dir", str(results), "--summary_only"])
    printed = capsys.readouterr().out
    assert f"Wrote into {results}/:\n  summary.md, summary.json (the table of 2 variant(s))" in printed
    assert (results / "summary.md").is_file() and (results / "summary.json").is_file()
    assert "Ran" not in printed and "weights" not in printed  # --summary_only runs nothing

    ran = RunReport(
        ran=["a"], skipped=["b"], summary=[{}, {}], results_dir=results, work_dir=tmp_path / "runs"
    )
    text = format_run_report(ran)
    assert text.startswith("Ran ['a']; skipped (results exist) ['b']; not started [].")
    assert "  a/ (its results" in text and f"Model folders (weights): {tmp_path / 'runs'}/ (a)." in text


def test_the_benchmark_says_when_its_report_was_not_written():
    from hf_simclr.benchmark.command import describe_report

    assert "pass --output_json FILE" in describe_report({"arguments": {"output_json": None}})
    assert (
        describe_report({"arguments": {"output_json": "x.json"}}) == ""
    )  # run_benchmark said "wrote x.json"


@pytest.mark.slow  # a tiny pretraining with two snapshots, then the curve through the script's command
def test_the_snapshot_curve_says_which_files_it_wrote_and_where(tmp_path, capsys):
    # Before: a line per snapshot; the curve's JSON, table, plots and feature cache went unnamed.
    from builders import save_tiny_dataset, tiny_pretraining

    from hf_simclr.evaluation.command import SNAPSHOT_CURVE

    data = save_tiny_dataset(tmp_path / "data", per_class=(8, 2))
    run = tmp_path / "run"
    tiny_pretraining(run, data, snapshot_epochs="1,2", checkpointing_steps="none")
    capsys.readouterr()
    argv = ["--model_name_or_path", str(run), "--dataset_name", str(data), "--knn_k", "3", "--max_iter", "20"]
    SNAPSHOT_CURVE.main([*argv, "--device", "cpu", "--tsne_points", "5", "--batch_size", "8"])
    printed = capsys.readouterr().out
    assert "epoch    1: linear" in printed and "epoch    2: linear" in printed
    named = re.findall(r"^  (\S+)", printed.split(f"Wrote into {run}/:", 1)[1], flags=re.MULTILINE)
    expected = {"snapshot_curve.json", "snapshot_curve.md", "snapshot_curve.png", "snapshot_tsne.png"}
    assert set(named) == expected | {"feature_cache/"}, printed
    for name in named:
        assert (run / name).exists(), name


def test_the_push_says_where_it_went_and_that_the_folders_card_is_now_the_repositorys(
    tiny_probe, tmp_path, monkeypatch, capsys
):
    # Before: "Pushed <folder> to <url>"; that the folder's README.md had been replaced went unsaid.
    import shutil
    from types import SimpleNamespace

    from hf_simclr import hub

    folder = shutil.copytree(tiny_probe[2], tmp_path / "model")
    url = "https://huggingface.co/org/name/commit/abc"
    monkeypatch.setattr(
        hub, "push_model_folder", lambda *args, **kwargs: SimpleNamespace(pr_url=None, commit_url=url)
    )
    hub.push_to_hub(hub.PushArguments(model_dir=str(folder), repo_id="org/name"))
    assert (
        f"Pushed {folder} to {url}; {folder}/README.md is the card rendered for it."
        in capsys.readouterr().out
    )
    hub.push_to_hub(hub.PushArguments(model_dir=str(folder), repo_id="org/name", write_card=False))
    assert capsys.readouterr().out.strip() == f"Pushed {folder} to {url}."
