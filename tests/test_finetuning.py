"""Fine-tuning with Trainer on tiny generated data: the script, the saved folder, initialisation, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from builders import SIX_CLASSES, quick_training, save_tiny_dataset
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    EvalPrediction,
)

from hf_simclr import SimCLRConfig, SimCLRForImageClassification, SimCLRForPreTraining, SimCLRModel
from hf_simclr.augmentation import augmentation_preset
from hf_simclr.finetuning.arguments import FinetuneArguments
from hf_simclr.finetuning.results import top_k_metrics
from hf_simclr.finetuning.run import build_classifier, check_output_dir, finetune
from hf_simclr.folder_format import FINETUNE_RESULTS_FILE
from hf_simclr.model_folder import save_model_folder

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A pretraining folder (ResNet-18, ImageNet stem: fast at 32 px) and a 6-class colour dataset (with 3
    classes, top-3 would hold every label by construction and say nothing)."""
    root = tmp_path_factory.mktemp("finetune")
    torch.manual_seed(3)
    model = SimCLRForPreTraining(SimCLRConfig(backbone="resnet18", cifar_stem=False, image_size=32))
    save_model_folder(model, root / "model", augmentation_preset("cifar10"), {"epochs": 1})
    return root / "model", save_tiny_dataset(root / "data", per_class=(8, 4), classes=SIX_CLASSES)


@pytest.mark.slow  # the whole script, end to end
def test_finetune_script_writes_a_loadable_classifier_and_its_results(tiny, tmp_path, monkeypatch, capsys):
    model_dir, data_dir = tiny
    output_dir = tmp_path / "finetuned"
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import finetune as finetune_script

    argv = [
        "finetune.py",
        "--model_name_or_path",
        str(model_dir),
        "--dataset_name",
        str(data_dir),
        "--label_fraction",
        "0.5",
        "--output_dir",
        str(output_dir),
        "--num_train_epochs",
        "2",
        "--per_device_train_batch_size",
        "4",
        "--per_device_eval_batch_size",
        "12",
        "--use_cpu",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    finetune_script.main()
    printed = capsys.readouterr().out

    results = json.loads((output_dir / FINETUNE_RESULTS_FILE).read_text())
    assert f"top-3 {100 * results['top3']:.2f}%" in printed
    assert results["init"] == "simclr" and results["label_fraction"] == 0.5
    assert results["num_train_samples"] == 24 and results["split_sizes"] == {
        "train": 48,
        "labeled": 24,
        "eval": 24,
    }
    assert 0 <= results["top1"] <= results["top3"] <= results["top5"] <= 1.0
    # The recorded top-1 is the confusion matrix's diagonal: the metrics read the predictions they claim to.
    confusion = torch.tensor(results["confusion_matrix"])
    assert results["top1"] == round(confusion.diag().sum().item() / 24, 4)
    assert [row["name"] for row in results["per_class"]] == SIX_CLASSES
    assert results["device"] == "CPU" or torch.cuda.is_available()
    assert results["wall_time_seconds"] > 0 and results["training_arguments"]["num_train_epochs"] == 2

    model = AutoModelForImageClassification.from_pretrained(output_dir)
    assert isinstance(model, SimCLRForImageClassification)
    assert model.config.id2label == dict(enumerate(SIX_CLASSES)) and model.config.label2id["dark red"] == 3
    assert AutoImageProcessor.from_pretrained(output_dir).image_size == 32
    initial = SimCLRModel.from_pretrained(model_dir).state_dict()["backbone.conv1.weight"]
    assert not torch.equal(model.simclr.state_dict()["backbone.conv1.weight"], initial)  # it trained


def test_init_simclr_starts_from_the_encoder_and_random_is_seeded(tiny):
    model_dir, data_dir = tiny
    encoder = SimCLRModel.from_pretrained(model_dir).state_dict()

    def build(init: str, seed: int) -> SimCLRForImageClassification:
        return build_classifier(
            FinetuneArguments(str(model_dir), dataset_name=str(data_dir), init=init), SIX_CLASSES, seed
        )

    pretrained = build("simclr", 0).simclr.state_dict()
    assert all(torch.equal(pretrained[key], value) for key, value in encoder.items())
    first, again, other = (build("random", seed).simclr.state_dict() for seed in (0, 0, 1))
    key = "backbone.conv1.weight"
    assert torch.equal(first[key], again[key]) and not torch.equal(first[key], other[key])
    assert not torch.equal(first[key], encoder[key])


def test_random_init_runs_through_trainer(tiny, tmp_path):
    model_dir, data_dir = tiny
    args = FinetuneArguments(str(model_dir), dataset_name=str(data_dir), init="random", label_fraction=0.25)
    results = finetune(args, quick_training(tmp_path / "random"))
    assert results["init"] == "random" and results["num_train_samples"] == 12
    assert (tmp_path / "random" / FINETUNE_RESULTS_FILE).is_file()


def test_an_output_dir_holding_a_run_is_refused_unless_overwritten(tiny, tmp_path):
    model_dir, data_dir = tiny
    output_dir = tmp_path / "run"
    (output_dir / "checkpoint-4").mkdir(parents=True)
    (output_dir / FINETUNE_RESULTS_FILE).write_text("{}")
    (output_dir / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already holds a run .*pass --overwrite_output_dir"):
        finetune(FinetuneArguments(str(model_dir), dataset_name=str(data_dir)), quick_training(output_dir))
    check_output_dir(output_dir, overwrite=False, resuming=True, model_name_or_path=str(model_dir))  # resume
    check_output_dir(output_dir, overwrite=True, resuming=False, model_name_or_path=str(model_dir))
    assert sorted(p.name for p in output_dir.iterdir()) == ["notes.txt"]  # only the earlier run's files went
    with pytest.raises(ValueError, match="is the model to fine-tune"):  # even with --overwrite_output_dir
        check_output_dir(model_dir, overwrite=True, resuming=False, model_name_or_path=str(model_dir))
    assert (model_dir / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"init": "imagenet"}, "--init imagenet must be simclr"),
        ({"label_fraction": 0.0}, r"--label_fraction 0.0 must be in \(0, 1\]"),
        ({"crop_scale_min": 1.5}, r"--crop_scale_min 1.5 must be in \(0, 1\]"),
    ],
)
def test_bad_arguments_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        FinetuneArguments("model", dataset_name="data", **overrides)


def test_a_folder_that_is_not_simclr_is_refused_before_training(tiny, tmp_path):
    _, data_dir = tiny
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="--model_name_or_path .*nothing: no config.json found"):
        finetune(
            FinetuneArguments(str(tmp_path / "nothing"), dataset_name=str(data_dir)),
            quick_training(tmp_path / "out"),
        )
    assert not (tmp_path / "out").exists()


def test_top_k_metrics_count_the_label_among_the_k_highest_scores():
    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5], [1, 0, 5, 4, 3, 2], [1, 0, 2, 3, 4, 9]])
    labels = torch.tensor([0, 3, 3, 1])  # ranks of the label: 1st, 3rd, 2nd, 5th or later
    metrics = top_k_metrics(EvalPrediction(predictions=logits.numpy(), label_ids=labels.numpy()))
    assert metrics == {"top1": 0.25, "top3": 0.75, "top5": 0.75}
