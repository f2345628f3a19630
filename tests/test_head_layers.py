"""Fine-tuning from a layer of the projection head (SimCLR v2): the classifier keeps the head's first k layers,
loads them from the pretraining folder, trains, saves and reloads with and without hf_simclr; bad k refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from builders import SIX_CLASSES, quick_training, save_tiny_dataset
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from hf_simclr import SimCLRConfig, SimCLRForImageClassification, SimCLRForPreTraining, SimCLRModel
from hf_simclr.arguments import UsageError
from hf_simclr.augmentation import augmentation_preset
from hf_simclr.finetuning.arguments import FinetuneArguments
from hf_simclr.finetuning.run import build_classifier, finetune
from hf_simclr.model_folder import save_model_folder
from hf_simclr.timm_export import export_timm, timm_export_scope

V2_HEAD = dict(projection_layers=3, projection_hidden_dim=64, projection_dim=16)


@pytest.fixture(scope="module")
def v2_folder(tmp_path_factory) -> tuple[Path, Path]:
    """A pretraining folder with a 3-layer head (ResNet-18, ImageNet stem: fast at 32 px), its BatchNorm
    statistics moved off their defaults, and a 6-class colour dataset."""
    root = tmp_path_factory.mktemp("head_layers")
    torch.manual_seed(5)
    model = SimCLRForPreTraining(SimCLRConfig(backbone="resnet18", image_size=32, **V2_HEAD))
    model.train()(torch.randn(8, 2, 3, 32, 32))
    save_model_folder(model.eval(), root / "model", augmentation_preset("cifar10"), {"epochs": 1})
    return root / "model", save_tiny_dataset(root / "data", per_class=(4, 2), classes=SIX_CLASSES)


def test_a_classifier_from_head_layer_1_holds_the_pretrained_first_layer_trains_and_reloads(
    v2_folder, tmp_path
):
    model_dir, data_dir = v2_folder
    args = FinetuneArguments(str(model_dir), dataset_name=str(data_dir), classifier_head_layers=1)
    classifier = build_classifier(args, SIX_CLASSES, seed=0)
    saved = load_file(model_dir / "model.safetensors")
    head = classifier.projection_head.state_dict()
    first_layer = sorted(
        k[len("projection_head.") :]
        for k in saved
        if k.startswith(("projection_head.0.", "projection_head.1."))
    )
    assert sorted(head) == first_layer  # the first layer's Linear and BatchNorm, nothing of the others
    assert all(torch.equal(value, saved[f"projection_head.{name}"]) for name, value in head.items())
    assert classifier.classifier.in_features == V2_HEAD["projection_hidden_dim"]

    output_dir = tmp_path / "v2"
    results = finetune(args, quick_training(output_dir, learning_rate=1e-2, seed=0))
    assert results["classifier_head_layers"] == 1 and results["method"] == "finetune"
    reloaded = AutoModelForImageClassification.from_pretrained(output_dir).eval()
    assert isinstance(reloaded, SimCLRForImageClassification) and reloaded.config.classifier_head_layers == 1
    first = reloaded.projection_head[0].weight
    assert not torch.equal(first, saved["projection_head.0.weight"])  # it trained, and saved what it trained
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = reloaded(pixels).logits
    torch.save({"pixels": pixels, "logits": logits}, tmp_path / "reference.pt")
    # Where hf_simclr is not installed: the folder's own code builds the same classifier.
    code = f"""
        import sys
        sys.modules["hf_simclr"] = None
        import torch
        from transformers import AutoModelForImageClassification
        model = AutoModelForImageClassification.from_pretrained({str(output_dir)!r}, trust_remote_code=True).eval()
        assert "hf_simclr" not in type(model).__module__
        reference = torch.load({str(tmp_path / "reference.pt")!r})
        with torch.no_grad():
            print("MAXDIFF", (model(reference["pixels"]).logits - reference["logits"]).abs().max().item())
        """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.split("MAXDIFF")[1].split()[0]) < 1e-6


def test_more_head_layers_than_the_head_has_are_refused_when_parsed(v2_folder):
    model_dir, data_dir = v2_folder
    with pytest.raises(UsageError, match=r"--classifier_head_layers 4: .* head of 3 layer\(s\).* at most 3"):
        FinetuneArguments(str(model_dir), dataset_name=str(data_dir), classifier_head_layers=4)
    with pytest.raises(UsageError, match="--classifier_head_layers -1 must be an integer >= 0"):
        FinetuneArguments(str(model_dir), dataset_name=str(data_dir), classifier_head_layers=-1)
    FinetuneArguments(str(model_dir), dataset_name=str(data_dir), classifier_head_layers=3)  # the whole head
    with pytest.raises(
        ValueError, match=r"classifier_head_layers=3 must be an integer in \[0, projection_layers=2\]"
    ):
        SimCLRConfig(classifier_head_layers=3)


def test_a_folder_without_the_head_layers_is_refused(v2_folder, tmp_path):
    model_dir, data_dir = v2_folder
    encoder = SimCLRModel.from_pretrained(model_dir)  # an encoder alone: no projection head to keep
    save_model_folder(encoder, tmp_path / "encoder", augmentation_preset("cifar10"))
    args = FinetuneArguments(str(tmp_path / "encoder"), dataset_name=str(data_dir), classifier_head_layers=1)
    with pytest.raises(
        UsageError, match=r"lack .* tensors of the encoder and the first 1 layer\(s\) of the projection head"
    ):
        build_classifier(args, SIX_CLASSES, seed=0)
    random = build_classifier(
        FinetuneArguments(
            str(model_dir), dataset_name=str(data_dir), init="random", classifier_head_layers=2
        ),
        SIX_CLASSES,
        seed=0,
    )
    assert len(random.projection_head) == 6 and random.classifier.in_features == 64


def test_the_timm_export_of_a_head_layer_classifier_says_what_it_leaves_out(v2_folder, tmp_path):
    import timm

    model_dir, data_dir = v2_folder
    classifier = build_classifier(
        FinetuneArguments(str(model_dir), dataset_name=str(data_dir), classifier_head_layers=1),
        SIX_CLASSES,
        0,
    )
    save_model_folder(classifier.eval(), tmp_path / "classifier", augmentation_preset("cifar10"))
    folder = export_timm(tmp_path / "classifier")
    encoder = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(encoder(pixels), classifier.simclr(pixels).pooler_output, atol=1e-5)
    scope = timm_export_scope(classifier.config)
    assert "the 1 projection-head layer(s) it keeps and linear classifier are not exported" in scope
