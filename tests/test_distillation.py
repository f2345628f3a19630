"""Distillation (SimCLR v2, Section 2.3): the loss against the paper's formula, its minimum at the teacher, a
smaller student end to end on a slice, the teacher's cached logits reused and never read for another teacher or
other data, and the inputs refused before any work."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from builders import SIX_CLASSES, quick_training, save_tiny_dataset
from transformers import AutoModelForImageClassification, TrainingArguments

from hf_simclr import SimCLRConfig, SimCLRForImageClassification, SimCLRForPreTraining
from hf_simclr.arguments import UsageError
from hf_simclr.augmentation import augmentation_preset
from hf_simclr.finetuning.arguments import DistillArguments, FinetuneArguments
from hf_simclr.finetuning.distill import build_student, distill, load_teacher
from hf_simclr.finetuning.distillation import cached_teacher_logits, distillation_loss
from hf_simclr.finetuning.run import finetune
from hf_simclr.folder_format import FINETUNE_RESULTS_FILE, MODEL_CARD_FILE, SEMI_SUPERVISED_TABLE
from hf_simclr.model_folder import save_model_folder
from hf_simclr.reports.semi_supervised import write_semi_supervised_table


def training(output_dir: Path, **changes) -> TrainingArguments:
    """Two steps of 8 images (the slice's 24 in batches of 8)."""
    steps = dict(max_steps=2, per_device_train_batch_size=8, per_device_eval_batch_size=16, seed=0)
    return quick_training(output_dir, **{**steps, **changes})


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A fine-tuned teacher (ResNet-18, ImageNet stem, 2-layer head, from head layer 1) on a 6-class colour
    dataset, and the pretraining folder it came from."""
    root = tmp_path_factory.mktemp("distill")
    torch.manual_seed(2)
    model = SimCLRForPreTraining(SimCLRConfig(backbone="resnet18", image_size=32, projection_hidden_dim=32))
    save_model_folder(model, root / "model", augmentation_preset("cifar10"), {"epochs": 1})
    data = save_tiny_dataset(root / "data", per_class=(4, 2), classes=SIX_CLASSES)
    args = FinetuneArguments(
        str(root / "model"), dataset_name=str(data), label_fraction=0.5, classifier_head_layers=1
    )
    finetune(args, training(root / "teacher", max_steps=1))
    return root / "teacher", data, root / "model"


def test_the_loss_is_the_papers_formula_and_its_gradient():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 7, requires_grad=True), torch.randn(5, 7)
    tau = 0.7
    naive = 0.0
    for row in range(5):  # -sum_y P_T(y|x; tau) log P_S(y|x; tau), averaged over x
        p_teacher = [math.exp(v / tau) for v in teacher[row].tolist()]
        p_student = [math.exp(v / tau) for v in student[row].tolist()]
        naive -= sum(
            t / sum(p_teacher) * math.log(s / sum(p_student))
            for t, s in zip(p_teacher, p_student, strict=True)
        )
    loss = distillation_loss(student, teacher, tau)
    assert loss.item() == pytest.approx(naive / 5, rel=1e-5)
    loss.backward()
    expected = (torch.softmax(student / tau, -1) - torch.softmax(teacher / tau, -1)) / (tau * 5)
    assert torch.allclose(student.grad, expected, atol=1e-6)
    # At the teacher's own logits the loss is at its minimum, the teacher's entropy, and its gradient is zero.
    same = teacher.clone().requires_grad_(True)
    at_teacher = distillation_loss(same, teacher, tau)
    at_teacher.backward()
    entropy = -(torch.softmax(teacher / tau, -1) * torch.log_softmax(teacher / tau, -1)).sum(-1).mean()
    assert at_teacher.item() == pytest.approx(entropy.item(), rel=1e-6) and same.grad.abs().max() < 1e-7
    assert at_teacher < loss


def test_a_student_started_from_the_teacher_is_at_the_minimum(teacher):
    teacher_dir, data, _ = teacher
    args = DistillArguments(teacher=str(teacher_dir), student=str(teacher_dir), dataset_name=str(data))
    loaded = load_teacher(args)
    student, kind = build_student(args, loaded, seed=0)
    assert kind == "folder"
    pixels = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        target = loaded.model.eval()(pixels).logits
    logits = student.eval()(pixels).logits
    logits.retain_grad()
    loss = distillation_loss(logits, target, 1.0)
    loss.backward()
    assert logits.grad.abs().max() < 1e-6
    assert loss.item() < distillation_loss(logits.detach() + torch.randn_like(logits), target, 1.0).item()


@pytest.fixture(scope="module")
def smaller_student(teacher, tmp_path_factory) -> tuple[DistillArguments, dict, Path]:
    """The teacher distilled into timm's smallest ResNet on the slice (with the labeled loss): `(arguments,
    results, folder)`."""
    teacher_dir, data, _ = teacher
    args = DistillArguments(
        teacher=str(teacher_dir),
        student="test_resnet",  # timm's smallest ResNet: another backbone than the teacher's
        dataset_name=str(data),
        label_fraction=0.5,
        labeled_loss_weight=0.5,
        distillation_temperature=2.0,
    )
    folder = tmp_path_factory.mktemp("smaller") / "student"
    return args, distill(args, training(folder)), folder


@pytest.fixture(scope="module")
def self_student(teacher, tmp_path_factory) -> tuple[dict, Path]:
    """The teacher self-distilled with its logits on the fly, one step: `(results, folder)`."""
    teacher_dir, data, _ = teacher
    args = DistillArguments(teacher=str(teacher_dir), dataset_name=str(data), teacher_logits="on_the_fly")
    folder = tmp_path_factory.mktemp("self") / "student"
    return distill(args, training(folder, max_steps=1)), folder


def test_a_smaller_student_runs_end_to_end_and_names_its_teacher(teacher, smaller_student):
    teacher_dir, _, model_dir = teacher
    args, results, folder = smaller_student
    assert results["method"] == "distill" and results["student"]["kind"] == "timm"
    assert results["student"]["parameters"] < results["student"]["teacher_parameters"]
    assert results["label_fraction"] == 0.5 and results["num_train_samples"] == 12  # the teacher's labels
    assert results["num_unlabeled_samples"] == 24 and results["split_sizes"]["labeled"] == 12
    assert results["model_name_or_path"] == str(model_dir) and results["teacher_logits_reused"] is False
    written = json.loads((folder / FINETUNE_RESULTS_FILE).read_text())
    assert written["top1"] == results["top1"] and written["teacher"]["path"] == str(teacher_dir)
    card = (folder / MODEL_CARD_FILE).read_text()
    assert f"**Teacher:** {teacher_dir.name} (local path)" in card and "timm's `test_resnet`" in card
    reloaded = AutoModelForImageClassification.from_pretrained(folder)
    assert isinstance(reloaded, SimCLRForImageClassification) and reloaded.config.backbone == "test_resnet"
    with pytest.raises(UsageError, match="already holds a run"):  # no run overwrites another's files
        distill(args, training(folder))


def test_cached_teacher_logits_are_reused_and_never_read_for_another_teacher_or_data(teacher, tmp_path):
    teacher_dir, data, _ = teacher
    args = DistillArguments(teacher=str(teacher_dir), dataset_name=str(data))
    model = load_teacher(args).model
    view = augmentation_preset("cifar10")
    rows = args.load_split("train_split")

    def logits(network, dataset):
        return cached_teacher_logits(tmp_path, network, dataset, "train", view, torch.device("cpu"), 16)

    first, file, reused = logits(model, rows)
    assert not reused and first.shape == (24, 6) and file.is_file()
    again, same_file, reused = logits(model, rows)
    assert reused and same_file == file and torch.equal(again, first)
    other = SimCLRForImageClassification(model.config)  # another teacher: other weights
    _, other_file, reused = logits(other, rows)
    assert not reused and other_file != file
    _, fewer_file, reused = logits(model, rows.select(range(12)))  # other data
    assert not reused and fewer_file != file
    shutil.copy(other_file, file)  # another teacher's logits under this teacher's name: not read
    recomputed, _, reused = logits(model, rows)
    assert not reused and torch.allclose(recomputed, first, atol=1e-5)


def test_inputs_that_do_not_fit_are_refused_before_any_work(teacher, tmp_path):
    teacher_dir, data, model_dir = teacher
    with pytest.raises(UsageError, match="is not a fine-tuned classifier"):
        distill(DistillArguments(teacher=str(model_dir), dataset_name=str(data)), training(tmp_path / "a"))
    other_labels = SimCLRForImageClassification(
        SimCLRConfig(backbone="resnet18", image_size=32, num_labels=3)
    )
    save_model_folder(other_labels, tmp_path / "three", augmentation_preset("cifar10"))
    args = DistillArguments(teacher=str(teacher_dir), student=str(tmp_path / "three"), dataset_name=str(data))
    with pytest.raises(UsageError, match="is a classifier of 3 labels, the teacher of 6"):
        build_student(args, load_teacher(args), seed=0)
    args = DistillArguments(teacher=str(teacher_dir), dataset_name=str(data), label_fraction=0.25)
    with pytest.raises(UsageError, match=r"--label_fraction 0.25: the teacher .* --label_fraction 0.5"):
        distill(args, training(tmp_path / "b"))
    with pytest.raises(UsageError, match="--student not-a-model: not a folder"):
        build_student(
            DistillArguments(teacher=str(teacher_dir), student="not-a-model", dataset_name=str(data)),
            load_teacher(args),
            0,
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_self_distillation_with_logits_on_the_fly(self_student):
    results, folder = self_student
    assert results["student"]["kind"] == "self" and results["teacher_logits_reused"] is None
    assert results["student"]["parameters"] == results["student"]["teacher_parameters"]
    assert results["classifier_head_layers"] == 1 and not (folder / "teacher_logits").exists()


def test_the_table_puts_the_distilled_and_head_layer_rows_in_their_place(
    teacher, smaller_student, self_student, tmp_path
):
    teacher_dir = teacher[0]
    runs = [teacher_dir, smaller_student[2], self_student[1]]  # the results files these tests wrote
    table = write_semi_supervised_table(runs, None, tmp_path)
    lines = (tmp_path / SEMI_SUPERVISED_TABLE).read_text().splitlines()
    lines = [line for line in lines if line.startswith("| ")]  # the header, then a line per row
    rows = [line.split(" | ")[0].lstrip("| ") for line in lines[1:]]
    assert rows == [
        "Fine-tune from SimCLR, from h (v1)",
        "Fine-tune from SimCLR, from a layer of the projection head (v2) (layer 1)",
        "Distilled, self (the teacher's architecture) (resnet18, tau 1)",
        "Distilled into a smaller student (test_resnet, tau 2)",
        "Fine-tune from random init",
        "Linear probe (frozen SimCLR features)",
    ]
    teacher_top1 = json.loads((teacher_dir / FINETUNE_RESULTS_FILE).read_text())["top1"]
    student_top1 = smaller_student[1]["top1"]
    assert f"| {100 * teacher_top1:.2f} |" in lines[2] and f"| {100 * student_top1:.2f} |" in lines[4]
    assert f"| {100 * self_student[0]['top1']:.2f} |" in lines[3]
    assert all(lines[row].endswith("| not run | not run |") for row in (1, 5, 6))
    assert table["fractions"] == [0.5] and "50% labels (12 images)" in lines[0]
