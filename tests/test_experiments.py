"""The experiment runner: a 2-variant grid on a slice of the real CIFAR-10 copy, reruns, budget, bad grids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from hf_simclr.experiments import runner
from hf_simclr.experiments.grid import load_grid, parse_overrides
from hf_simclr.experiments.runner import estimated_seconds, run_grid
from hf_simclr.experiments.summary import write_summary

pytestmark = pytest.mark.slow

RECIPE = {
    "preset": "cifar10",
    "image_size": 16,
    "per_device_train_batch_size": 32,
    "optimizer": "sgd",
    "warmup_epochs": 0,
    "num_train_epochs": 1,
    "knn_every_epochs": 1,
    "report_to": "none",
    "logging_steps": 1,
}


def write_grid(folder: Path, cifar10_path: Path, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    grid = {
        "base": "recipe.yaml",
        "overrides": {
            "dataset_name": str(cifar10_path),
            "max_train_samples": 64,
            "max_eval_samples": 32,
            "checkpointing_steps": "none",
            "seed": 0,
        },
        "evaluation": {"knn_k": [5, 200], "label_fractions": [0.5], "max_iter": 20, "device": "cpu"},
        "variants": {"mlp-head": {}, "no-head": {"projection_layers": 0}},
        **extra,
    }
    (folder / "grid.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    return folder / "grid.yaml"


@pytest.fixture(scope="module")
def grid_run(cifar10_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """The grid run twice: first with a budget that lets only one variant start, then to completion."""
    root = tmp_path_factory.mktemp("grid")
    grid = load_grid(write_grid(root, cifar10_path))
    results_dir, work_dir = root / "results", root / "work"
    first = run_grid(grid, results_dir, work_dir, time_budget_minutes=1e-4)
    second = run_grid(grid, results_dir, work_dir)
    return grid, results_dir, work_dir, first, second


def test_budget_stops_before_a_variant_that_would_not_fit_and_a_rerun_completes_the_grid(grid_run):
    _, results_dir, _, first, second = grid_run
    assert first.ran == ["mlp-head"] and first.not_started == ["no-head"]
    assert second.skipped == ["mlp-head"] and second.ran == ["no-head"]
    assert sorted(row["status"] for row in second.summary) == ["done", "done"]


def test_each_variant_folder_holds_results_but_never_weights(grid_run):
    _, results_dir, work_dir, _, _ = grid_run
    for name, layers in (("mlp-head", 2), ("no-head", 0)):
        folder = results_dir / name
        names = {path.name for path in folder.iterdir()}
        assert {
            "results.json",
            "training_args.json",
            "log_history.jsonl",
            "wall_times.json",
            "experiment.json",
        } <= names
        assert not any(name.endswith((".safetensors", ".bin", ".pt")) for name in names)
        results = json.loads((folder / "results.json").read_text())
        assert results["model_config"]["projection_layers"] == layers
        assert results["features"] == ["h", "z"] and results["split_sizes"] == {"train": 64, "eval": 32}
        assert (work_dir / name / "model.safetensors").is_file()  # weights stay in the work folder
        assert not (work_dir / name / "checkpoints").exists()  # checkpointing_steps: none
    # projection_layers 0: z = g(h) = h, so both probes see the same features.
    no_head = json.loads((results_dir / "no-head" / "results.json").read_text())
    assert no_head["z"]["linear_top1"] == no_head["linear_top1"]


def test_table_is_written_from_the_results_files(grid_run):
    grid, results_dir, _, _, _ = grid_run
    table = (results_dir / "summary.md").read_text()
    summary = json.loads((results_dir / "summary.json").read_text())
    for row in summary["rows"]:
        results = json.loads((results_dir / row["variant"] / "results.json").read_text())
        line = next(line for line in table.splitlines() if line.startswith(f"| {row['variant']} |"))
        for value in (
            results["knn_top1"]["5"],
            results["knn_top1"]["200"],
            results["linear_top1"],
            results["z"]["linear_top1"],
        ):
            assert f"{100 * value:.2f}" in line
        assert "--variants " + row["variant"] in line and "| CPU |" in line
    # Rewriting the table from the files alone gives the same table.
    (results_dir / "summary.md").unlink()
    write_summary(grid, results_dir)
    assert (results_dir / "summary.md").read_text() == table


def test_results_of_other_settings_are_refused_not_replaced(grid_run, monkeypatch):
    grid, results_dir, work_dir, _, _ = grid_run
    monkeypatch.setattr(runner, "pretrain", lambda *args: pytest.fail("nothing may run"))
    with pytest.raises(ValueError, match=r"holds results of other settings \(loss_temperature: 0.5 -> 0.2\)"):
        run_grid(grid, results_dir, work_dir, command_line={"loss_temperature": 0.2})
    assert run_grid(grid, results_dir, work_dir).skipped == ["mlp-head", "no-head"]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"variants": {"a": {"projection_layer": 0}}}, r"variant 'a' sets \['projection_layer'\]"),
        ({"evaluation": {"knn": [5]}}, r"evaluation sets \['knn'\]"),
        ({"sections": [{"title": "x", "variants": ["nope"]}]}, r"names unknown variants \['nope'\]"),
        ({"spread": ["mlp-head"]}, "spread must name two variants"),
        ({"base": "missing.yaml"}, "base recipe missing.yaml not found"),
    ],
)
def test_bad_grids_fail_before_anything_runs(cifar10_path, tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        load_grid(write_grid(tmp_path, cifar10_path, **change))


def test_overrides_and_estimates():
    assert parse_overrides(["num_train_epochs=1", "torch_compile=false", "knn_k=[5]"]) == {
        "num_train_epochs": 1,
        "torch_compile": False,
        "knn_k": [5],
    }
    with pytest.raises(ValueError, match="write key=value"):
        parse_overrides(["num_train_epochs"])
    history = [{"pretrain_seconds": 100.0, "epochs": 10, "evaluation_seconds": 20.0}]
    assert estimated_seconds([], 50) is None and estimated_seconds(history, 50) == 520.0


def test_the_header_states_the_command_line_overrides_the_rows_were_run_with(grid_run, tmp_path):
    # Before: a grid run with --override num_train_epochs=1 was described as "every variant also sets
    # num_train_epochs: 50" (the grid file's protocol).
    grid, results_dir, _, _, _ = grid_run
    copy = Path(shutil.copytree(results_dir, tmp_path / "results"))
    experiment = json.loads((copy / "no-head" / "experiment.json").read_text())
    assert experiment["command_line"] == {}  # recorded by the runner (here: none given)
    experiment["command_line"] = {"num_train_epochs": 1}
    (copy / "no-head" / "experiment.json").write_text(json.dumps(experiment))
    write_summary(grid, copy)
    table = (copy / "summary.md").read_text()
    assert (
        "command-line overrides, which the grid file does not hold: `num_train_epochs: 1` (rows `no-head`)"
        in table
    )


def test_an_override_typo_names_the_override_flag_not_a_variant(cifar10_path, tmp_path):
    grid = load_grid(write_grid(tmp_path, cifar10_path))
    with pytest.raises(ValueError, match=r"--override sets \['num_train_epoch'\], which scripts/pretrain.py"):
        run_grid(grid, tmp_path / "results", tmp_path / "work", command_line={"num_train_epoch": 1})
    with pytest.raises(
        ValueError, match=r"variant 'mlp-head' .*--override \{'num_train_epochs': 'x'\}.*invalid float"
    ):
        run_grid(grid, tmp_path / "results", tmp_path / "work", command_line={"num_train_epochs": "x"})


def test_the_reproduce_command_shows_no_path_of_the_machine(tmp_path):
    # Before: `--results_dir /home/someone/...` and `--override dataset_name=/home/someone/...` as given.
    checkout, data = tmp_path / "checkout", tmp_path / "data"
    data.mkdir()  # the grid's dataset, checked when the grid is read
    grid = load_grid(write_grid(checkout / "configs", data))
    inside, outside = checkout / ".data" / "cifar10", tmp_path / "elsewhere" / "cifar10"
    command = runner.reproduce_command(
        grid, "no-head", {"dataset_name": str(outside), "seed": 1}, checkout / "results", root=checkout
    )
    assert str(tmp_path) not in command
    assert command == (
        "python scripts/run_experiments.py configs/grid.yaml --variants no-head --results_dir results "
        "--override 'dataset_name=cifar10 (local path)' --override seed=1"
    )
    command = runner.reproduce_command(
        grid, "no-head", {"dataset_name": str(inside)}, tmp_path / "elsewhere" / "runs", root=checkout
    )
    assert command.endswith("--results_dir 'runs (local path)' --override dataset_name=.data/cifar10")


def test_a_row_run_with_local_paths_shows_none_and_its_command_reruns_it(tmp_path, monkeypatch, capsys):
    # A variant run from the repository's root with an absolute --results_dir and a local dataset: the table
    # (a committed page) names no path of this machine, and its reproduce command, run from the root, is the
    # same row (its results are found and kept, nothing runs again).
    from builders import save_tiny_dataset

    from hf_simclr.experiments.command import RUN_EXPERIMENTS

    checkout = tmp_path / "checkout"
    outside = save_tiny_dataset(tmp_path / "elsewhere" / "tiny-copy")  # the grid file's dataset_name
    grid = load_grid(write_grid(checkout / "configs", outside))
    dataset = save_tiny_dataset(checkout / ".data" / "tiny")
    monkeypatch.chdir(checkout)
    results_dir, table = checkout / "results" / "grid", checkout / "results" / "grid.md"
    command_line = {"dataset_name": str(dataset)}
    run_grid(grid, results_dir, checkout / "work", command_line, ["mlp-head"], table=table)
    page = table.read_text()
    assert str(tmp_path) not in page and page == (results_dir / "summary.md").read_text()
    assert "`dataset_name: tiny-copy (local path)`" in page  # the grid file's, outside the checkout
    reproduce = (
        "python scripts/run_experiments.py configs/grid.yaml --variants mlp-head --results_dir results/grid "
        "--override dataset_name=.data/tiny"
    )
    assert f"`{reproduce}`" in page
    monkeypatch.setattr(
        runner, "pretrain", lambda *args: pytest.fail("the row's results exist: nothing runs")
    )
    capsys.readouterr()
    RUN_EXPERIMENTS.main(reproduce.split()[2:])
    assert "skipped (results exist) ['mlp-head']" in capsys.readouterr().out


@pytest.mark.slow  # pretraining, the probe, two fine-tunings and a distillation, on generated data
def test_a_grid_with_a_chain_pretrains_fine_tunes_distils_and_tabulates(tmp_path):
    from builders import save_tiny_dataset

    data = save_tiny_dataset(tmp_path / "data", per_class=(4, 2))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({**RECIPE, "image_size": 16, "knn_every_epochs": 0}))
    spec = {
        "base": "recipe.yaml",
        "overrides": {
            "dataset_name": str(data),
            "projection_layers": 3,
            "projection_hidden_dim": 32,
            "per_device_train_batch_size": 6,
            "max_steps": 1,
            "checkpointing_steps": "none",
        },
        "evaluation": {
            "knn_k": [3],
            "label_fractions": [0.5],
            "max_iter": 10,
            "device": "cpu",
            "plots": False,
        },
        "variants": {"v2": {}},
        "chain": {
            "label_fractions": [0.5],
            "settings": {
                "max_steps": 1,
                "per_device_train_batch_size": 6,
                "use_cpu": True,
                "report_to": "none",
            },
            "finetune": {"v1": {}, "v2": {"classifier_head_layers": 1}},
            "distill": {"small": {"teacher": "v2", "student": "test_resnet"}},
        },
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    grid = load_grid(tmp_path / "grid.yaml")
    report = run_grid(grid, tmp_path / "results", tmp_path / "work")
    assert report.ran == ["v2"]
    folder = tmp_path / "results" / "v2"
    assert sorted(path.name for path in (folder / "chain").iterdir()) == [
        "small-50pct",
        "v1-50pct",
        "v2-50pct",
    ]
    distilled = json.loads((folder / "chain" / "small-50pct" / "finetune_results.json").read_text())
    assert distilled["teacher"]["path"] == str(tmp_path / "work" / "v2" / "chain" / "v2-50pct")
    assert (folder / "chain" / "small-50pct" / "README.md").is_file()
    table = (folder / "semi_supervised.md").read_text()
    for method, results in (
        ("from h (v1)", "v1-50pct"),
        ("(v2) (layer 1)", "v2-50pct"),
        ("smaller", "small-50pct"),
    ):
        top1 = json.loads((folder / "chain" / results / "finetune_results.json").read_text())["top1"]
        row = next(line for line in table.splitlines() if method in line)
        assert f"| {100 * top1:.2f} |" in row
    assert "| Fine-tune from random init | not run | not run |" in table
    assert json.loads((folder / "wall_times.json").read_text())["chain_seconds"] > 0
    assert not any(path.suffix == ".safetensors" for path in folder.rglob("*"))  # no weights in results
    bad = {**spec, "chain": {**spec["chain"], "distill": {"small": {"teacher": "v3"}}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(
        ValueError, match=r"chain distill 'small' has teacher 'v3'; name one of the finetune runs"
    ):
        load_grid(tmp_path / "bad.yaml")
    typo = {**spec, "chain": {**spec["chain"], "finetune": {"v1": {}, "v2": {"classifier_head_layer": 1}}}}
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(typo))
    with pytest.raises(ValueError, match=r"chain finetune 'v2' sets \['classifier_head_layer'\]"):
        load_grid(tmp_path / "typo.yaml")
