"""SimCLR v2's other lever, from timm: selective-kernel and wider ResNets (`skresnet18`, `skresnet34`,
`skresnext50_32x4d`, `wide_resnet50_2`) pretrain (a step of the loss), take the CIFAR stem, save, reload and
export to timm like any ResNet; `skresnet18` runs the pretraining script's job for two steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from builders import save_tiny_dataset
from transformers import AutoModel

from hf_simclr import SimCLRConfig, SimCLRForPreTraining
from hf_simclr.augmentation import augmentation_preset
from hf_simclr.model_folder import save_model_folder
from hf_simclr.modeling_simclr import create_backbone
from hf_simclr.timm_export import export_timm

V2_BACKBONES = ["skresnet18", "skresnet34", "skresnext50_32x4d", "wide_resnet50_2"]
# 25M and 67M parameters: built, saved, reloaded and exported, without a training step or a second (CIFAR-stem)
# build, which the two small ones check for the family.
LARGE = {"skresnext50_32x4d", "wide_resnet50_2"}


@pytest.mark.parametrize("backbone", V2_BACKBONES)
def test_a_v2_backbone_pretrains_saves_reloads_and_exports(backbone, tmp_path: Path):
    torch.manual_seed(0)
    head = dict(projection_hidden_dim=32, projection_dim=16, projection_layers=3)
    if backbone not in LARGE:
        stem = create_backbone(SimCLRConfig(backbone=backbone, cifar_stem=True, image_size=16))
        assert isinstance(stem.maxpool, torch.nn.Identity) and stem.conv1.stride == (1, 1)  # the CIFAR stem
    model = SimCLRForPreTraining(SimCLRConfig(backbone=backbone, image_size=32, **head))
    if backbone not in LARGE:
        output = model(torch.randn(2, 2, 3, 32, 32))
        output.loss.backward()  # a pretraining step's loss and gradient
        assert torch.isfinite(output.loss) and model.simclr.backbone.conv1.weight.grad is not None
    folder = save_model_folder(model.eval(), tmp_path / "model", augmentation_preset("cifar10"))
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h = model.simclr(pixels).pooler_output
        reloaded = AutoModel.from_pretrained(folder).eval()
        assert torch.allclose(reloaded(pixels).pooler_output, h, atol=1e-5)
        exported = timm.create_model(f"local-dir:{export_timm(folder)}", pretrained=True).eval()
        assert torch.allclose(exported(pixels), h, atol=1e-5)


def test_skresnet18_runs_the_pretraining_job(tmp_path: Path):
    from hf_simclr.pretraining.arguments import PretrainingArguments
    from hf_simclr.pretraining.data_arguments import DataArguments
    from hf_simclr.pretraining.loop import pretrain
    from hf_simclr.pretraining.model_arguments import ModelArguments

    data = save_tiny_dataset(tmp_path / "data", per_class=(4, 2))
    pretrain(
        ModelArguments(backbone="skresnet18", projection_layers=3),
        DataArguments(dataset_name=str(data), image_size=16, max_train_samples=12),
        PretrainingArguments(
            output_dir=str(tmp_path / "run"),
            report_to="none",
            knn_every_epochs=0,
            per_device_train_batch_size=6,
            max_steps=2,
            checkpointing_steps="none",
            warmup_epochs=0,
        ),
    )
    model = AutoModel.from_pretrained(tmp_path / "run")
    assert model.config.backbone == "skresnet18" and model.config.cifar_stem  # 16 px: the CIFAR stem
