"""Model cards a Hub user can trust, checked with huggingface_hub's own parsers: license, datasets listed
once (and the Hub dataset a local copy comes from), a `timm` tag only where timm loads the folder, compute,
fine-tuning results, no path of the machine that made the runs, the published cards and pages."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from builders import save_tiny_dataset
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_simclr import SimCLRConfig, SimCLRForPreTraining
from hf_simclr.augmentation import augmentation_preset
from hf_simclr.evaluation.arguments import LinearProbeArguments
from hf_simclr.evaluation.probe import run_linear_probe
from hf_simclr.folder_format import RESULTS_FILE, SEMI_SUPERVISED_FILE, TRAINING_ARGS_FILE, WALL_TIMES_FILE
from hf_simclr.model_folder import is_generated, save_model_folder
from hf_simclr.reports.arguments import RenderArguments
from hf_simclr.reports.card import render_model_card
from hf_simclr.reports.command import render_published_cards
from hf_simclr.reports.published import readme_brief, results_block
from hf_simclr.reports.semi_supervised import collect_semi_supervised, format_semi_supervised_table
from hf_simclr.timm_export import export_timm

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "someone/simclr-resnet18-stock"


def parse(card_text: str) -> ModelCard:
    """Parse a rendered card as the Hub does, and check its model-index with the Hub's own converter."""
    card = ModelCard(card_text)
    model_name, eval_results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert eval_results == card.data.eval_results and model_name == card.data.model_name
    return card


@pytest.fixture(scope="module")
def stock_folder(tmp_path_factory) -> Path:
    """A probed folder of a stock ResNet-18 (no CIFAR stem), pretrained and evaluated on the same Hub dataset
    name (a local copy stands in for it: the probe reads the copy, the records name the Hub id)."""
    root = tmp_path_factory.mktemp("cards")
    torch.manual_seed(0)
    model = SimCLRForPreTraining(SimCLRConfig(backbone="resnet18", cifar_stem=False, image_size=32))
    training_args = {"dataset_name": "uoft-cs/cifar10", "wall_time_seconds": 90.0, "device": "CPU"}
    folder = save_model_folder(model, root / "model", augmentation_preset("cifar10"), training_args)
    data = save_tiny_dataset(root / "data", per_class=(8, 4))
    results = run_linear_probe(
        LinearProbeArguments(
            model_name_or_path=str(folder),
            dataset_name=str(data),
            knn_k=[3],
            label_fractions=[0.5],
            weight_decays=[1e-4],
            max_iter=30,
            skip_baseline=True,
            device="cpu",
        )
    )
    results["dataset"]["name"] = "uoft-cs/cifar10"
    (folder / RESULTS_FILE).write_text(json.dumps(results))
    return folder


@pytest.fixture
def folder(stock_folder, tmp_path) -> Path:
    return Path(
        shutil.copytree(stock_folder, tmp_path / "model", ignore=shutil.ignore_patterns("feature_cache"))
    )


def test_license_datasets_once_and_no_timm_tag_without_a_timm_copy(folder):
    card = parse(render_model_card(folder, repo_id=REPO_ID).content)
    assert card.data.license == "apache-2.0"
    assert card.data.datasets == ["uoft-cs/cifar10"]  # pretraining and evaluation: one dataset, listed once
    assert "timm" not in card.data.tags and "timm.create_model" not in card.text
    assert parse(render_model_card(folder, repo_id=REPO_ID, license="mit").content).data.license == "mit"


def test_timm_tag_and_usage_only_while_the_timm_copy_matches_the_weights(folder):
    export_timm(folder)
    card = parse(render_model_card(folder, repo_id=REPO_ID).content)
    assert "timm" in card.data.tags
    assert f'timm.create_model("hf-hub:{REPO_ID}", pretrained=True)' in card.text
    torch.manual_seed(1)  # the folder re-saved with other weights: its timm copy is stale
    model = SimCLRForPreTraining(SimCLRConfig(backbone="resnet18", cifar_stem=False, image_size=32))
    save_model_folder(model, folder, augmentation_preset("cifar10"))
    assert "timm" not in parse(render_model_card(folder, repo_id=REPO_ID).content).data.tags


def fine_tuning_runs(results: dict) -> list[tuple[str, dict]]:
    """Fine-tuning from SimCLR and from random init at 50% of the labels, on the probe's data and model."""
    dataset = {**results["dataset"], "subset_seed": results["seed"]}
    return [
        (
            f"ft-{init}",
            {
                "init": init,
                "label_fraction": 0.5,
                "num_train_samples": 12,
                "top1": top1,
                "top3": 1.0,
                "model_name_or_path": results["model_name_or_path"],
                "dataset": dataset,
                "split_sizes": {"eval": 12},
                "device": "CPU",
                "wall_time_seconds": 30.0,
            },
        )
        for init, top1 in (("simclr", 0.75), ("random", 0.5))
    ]


def test_compute_and_fine_tuning_results_reach_the_card_and_its_model_index(folder):
    results = json.loads((folder / RESULTS_FILE).read_text())
    table = collect_semi_supervised(fine_tuning_runs(results), (str(folder / RESULTS_FILE), results))
    (folder / SEMI_SUPERVISED_FILE).write_text(json.dumps(table))
    card = parse(render_model_card(folder, repo_id=REPO_ID).content)
    values = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert {r.task_name for r in card.data.eval_results} == {"Image classification"}
    assert values["Fine-tuned top-1 (50% labels)"] == 0.75 and values["Fine-tuned top-3 (50% labels)"] == 1.0
    assert not any("random" in name.lower() for name in values)  # the baseline is not this model
    assert values["Linear probe top-1"] == results["linear_top1"]
    assert "| Fine-tune from random init | 50.00 | 100.00 |" in card.text
    assert "| Pretraining | CPU | 1.5 min (90 s) |" in card.text
    assert "| Fine-tuning from SimCLR, 50% of the labels | CPU | 0.5 min (30 s) |" in card.text
    assert "fine-tuning on label fractions" in card.text  # the limitations say so


def test_the_compute_table_gives_the_whole_commands_beside_the_runs_own_records(folder):
    # Before: the card showed the runs' own 234 s and 72 s, the README the whole commands' 251 s and 87 s,
    # neither saying which it was.
    whole = {"pretrain_seconds": 102, "probe_seconds": 60, "gpu": "GPU", "date": "2026-11-23"}
    (folder / WALL_TIMES_FILE).write_text(json.dumps(whole))
    card = render_model_card(folder, repo_id=REPO_ID).text
    assert "| Pretraining | CPU | 1.5 min (90 s) in the run, 1.7 min (102 s) for the whole command |" in card
    assert "the whole commands' times follow: the process from its start to its exit" in card
    # The experiment runner's wall_times.json repeats the runs' own records: nothing is added.
    runner = {"pretrain_seconds": 90.0, "evaluation_seconds": 12.0, "device": "CPU", "date": "2026-11-23"}
    (folder / WALL_TIMES_FILE).write_text(json.dumps(runner))
    assert "| Pretraining | CPU | 1.5 min (90 s) |" in render_model_card(folder, repo_id=REPO_ID).text


def test_published_cards_are_rendered_from_the_results_folders_without_weights(
    cifar10_path, tmp_path, monkeypatch, capsys
):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))
    import render_cards

    results_dir = Path(shutil.copytree(REPO_ROOT / "results", tmp_path / "results"))
    readme = Path(shutil.copy(REPO_ROOT / "README.md", tmp_path / "README.md"))
    args = RenderArguments(
        results_dir=str(results_dir),
        cards_dir=str(tmp_path),
        readme=str(readme),
        dataset_root=str(cifar10_path.parent),
    )
    render_published_cards(args)
    # The committed pages hold the blocks this command writes (numbers from the runs' files), and stay the
    # authors' files: the blocks' markers are not the mark of a generated file.
    for page in ("README.md", "results/README.md"):
        assert (tmp_path / page).read_text() == (REPO_ROOT / page).read_text(), page
        assert not is_generated(REPO_ROOT / page)
    published = yaml.safe_load((results_dir / "published.yaml").read_text())
    for name in published:
        assert not list((results_dir / name).glob("*.safetensors"))
        rendered = (tmp_path / f"{name}.md").read_text()
        # The committed cards are the ones this command writes (rerun `python scripts/render_cards.py`).
        assert rendered == (REPO_ROOT / "model_cards" / f"{name}.md").read_text()
        assert rendered == (REPO_ROOT / "results" / name / "README.md").read_text()
        card = parse(rendered)
        results = json.loads((results_dir / name / RESULTS_FILE).read_text())
        values = {r.metric_name: r.metric_value for r in card.data.eval_results}
        assert values["Linear probe top-1"] == results["linear_top1"]
        assert values["kNN top-1 (k=10)"] == results["knn_top1"]["10"]
        assert card.data.license == "apache-2.0" and "timm" not in card.data.tags
        # A run on the JPEG copy: the Hub dataset it was made from is listed, the text says it is the copy.
        assert card.data.datasets == ["uoft-cs/cifar10"]
        assert "is a local copy of `uoft-cs/cifar10` whose images were re-encoded as JPEG" in card.text
        assert "not a stock timm architecture" in card.text  # CIFAR stem: the card says why
        assert "| Pretraining | NVIDIA H100 80GB HBM3 |" in card.text
    (results_dir / "unlisted").mkdir()
    (results_dir / "unlisted" / RESULTS_FILE).write_text("{}")
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "render_cards.py",
            "--results_dir",
            str(results_dir),
            "--cards_dir",
            str(tmp_path),
            "--readme",
            str(readme),
        ],
    )
    with pytest.raises(SystemExit) as exit:
        render_cards.main()
    assert exit.value.code == 2 and "unlisted/ has no Hub repository" in capsys.readouterr().err


def test_a_probe_below_its_random_init_baseline_is_flagged_in_the_card(folder):
    results = json.loads((folder / RESULTS_FILE).read_text())
    results["random_init_baseline"] = {
        **(results.get("random_init_baseline") or {}),
        "linear_top1": results["linear_top1"] + 0.05,
    }
    card = render_model_card(folder, results=results, repo_id=REPO_ID)
    summary = card.text.split("## Model", 1)[0]
    assert "Warning: this is not above the" in summary and "Do not use these weights" in summary
    results["random_init_baseline"]["linear_top1"] = results["linear_top1"] - 0.05
    assert "Warning" not in render_model_card(folder, results=results, repo_id=REPO_ID).text


def test_the_card_summary_says_when_the_pretraining_budget_was_tiny(folder) -> None:
    # Before: a 512-image, 2-epoch run was visible only in the argument table.
    from hf_simclr.reports.card import tiny_budget

    args = {
        "dataset_name": "uoft-cs/cifar10",
        "max_train_samples": 512,
        "num_train_epochs": 2,
        "max_steps": -1,
    }
    text = parse(render_model_card(folder, training_args=args, repo_id=REPO_ID).content).text
    summary = text.split("\n## ", 1)[0]
    assert "pretraining budget was tiny (512 images, 2 epochs)" in summary

    assert "512 images, 2 epochs" in tiny_budget(
        {"max_train_samples": 512, "num_train_epochs": 2, "max_steps": -1}
    )
    assert "12 steps" in tiny_budget({"max_steps": 12, "num_train_epochs": 100})
    assert tiny_budget({"max_train_samples": None, "num_train_epochs": 100, "max_steps": -1}) is None


def test_no_card_or_table_shows_a_path_of_the_machine_that_made_the_runs(folder, tmp_path):
    # Before: the argument table showed `.data/cifar10`, `/tmp/cache` and `/tmp/ref`, the usage snippet the
    # model folder's path, and the semi-supervised footnote the dataset's path.
    machine = tmp_path / "gpu-machine" / "home" / "someone"
    dataset, run = machine / ".data" / "cifar10", machine / "runs" / "ref"
    paths = [dataset, run, machine / "cache", run / "checkpoints" / "step_3", run / "recipe.yaml", folder]
    training_args = {
        "model_name_or_path": str(folder),  # a path that exists here
        "dataset_name": str(dataset),  # paths of another machine
        "output_dir": str(run),
        "decoded_cache_dir": str(machine / "cache"),
        "resume_from_checkpoint": str(run / "checkpoints" / "step_3"),
        "recipe": {"files": [str(run / "recipe.yaml")]},
        "wall_time_seconds": 90.0,
    }
    (folder / TRAINING_ARGS_FILE).write_text(json.dumps(training_args))
    results = json.loads((folder / RESULTS_FILE).read_text())
    results["dataset"]["name"], results["model_name_or_path"] = str(dataset), str(folder)
    (folder / RESULTS_FILE).write_text(json.dumps(results))
    table = collect_semi_supervised(fine_tuning_runs(results), (str(folder / RESULTS_FILE), results))
    (folder / SEMI_SUPERVISED_FILE).write_text(json.dumps(table))
    export_timm(folder)  # its usage snippet names a folder too
    card = render_model_card(folder).content  # no Hub id: the snippet names the folder
    for text in (card, format_semi_supervised_table(table), results_block(folder), readme_brief(folder)):
        for path in paths:
            for shown in (path, *path.parents[:-1]):  # the path and every folder above it but /
                assert str(shown) not in text
    assert (
        "| `dataset_name` | cifar10 (local path) |" in card and "| `output_dir` | ref (local path) |" in card
    )
    assert 'AutoModel.from_pretrained("path/to/model", trust_remote_code=True)' in card
    assert 'timm.create_model("local-dir:path/to/model/timm"' in card
    assert "of `cifar10`; label subsets" in format_semi_supervised_table(table)


def test_a_local_copy_lists_the_hub_dataset_it_was_made_from(folder, tmp_path):
    # Before: only Hub ids reached `datasets:`, so a run on a local copy of a Hub dataset listed none.
    copy = tmp_path / "cifar10-jpeg"
    copy.mkdir()
    card_yaml = "---\npretty_name: CIFAR-10 (JPEG)\nsource_datasets:\n- extended|uoft-cs/cifar10\n---\n"
    (copy / "README.md").write_text(card_yaml + "\nThe images of `uoft-cs/cifar10`, re-encoded as JPEG.\n")
    results = json.loads((folder / RESULTS_FILE).read_text())
    results["dataset"]["name"] = str(copy)
    training_args = {"dataset_name": str(copy), "wall_time_seconds": 90.0}
    card = parse(render_model_card(folder, results, training_args, REPO_ID).content)
    assert card.data.datasets == ["uoft-cs/cifar10"]
    assert (
        "CIFAR-10 (JPEG) is a local copy of `uoft-cs/cifar10` whose images were re-encoded as JPEG"
        in card.text
    )
    assert {result.dataset_name for result in card.data.eval_results} == {"CIFAR-10 (JPEG)"}
    # A copy whose card does not say where it comes from: none, unless the publisher names it.
    (copy / "README.md").write_text("---\npretty_name: CIFAR-10 (JPEG)\n---\n\nRe-encoded as JPEG.\n")
    assert parse(render_model_card(folder, results, training_args, REPO_ID).content).data.datasets is None
    named = {"cifar10-jpeg": "uoft-cs/cifar10"}  # results/published.yaml's source_datasets
    card = parse(render_model_card(folder, results, training_args, REPO_ID, source_datasets=named).content)
    assert card.data.datasets == ["uoft-cs/cifar10"]
