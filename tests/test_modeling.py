"""SimCLR config validation, models, initialisation and save/load round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification, AutoModelForPreTraining

from hf_simclr import (
    SimCLRConfig,
    SimCLRForImageClassification,
    SimCLRForPreTraining,
    SimCLRModel,
)


def tiny_config(**overrides) -> SimCLRConfig:
    return SimCLRConfig(**{"backbone": "resnet18", "cifar_stem": True, "image_size": 32, **overrides})


@pytest.mark.parametrize(
    "field, value",
    [
        ("projection_layers", -1),
        ("projection_dim", 0),
        ("projection_hidden_dim", 0),
        ("loss_temperature", 0.0),
        ("image_size", 4),
        ("backbone", ""),
        ("backbone_kwargs", {"num_classes": 10}),
    ],
)
def test_bad_config_values_name_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=field if field != "backbone_kwargs" else "num_classes"):
        tiny_config(**{field: value})


def test_unknown_backbone_and_unfit_cifar_stem() -> None:
    with pytest.raises(ValueError, match="not a timm model"):
        SimCLRModel(tiny_config(backbone="resnet_does_not_exist"))
    with pytest.raises(ValueError, match="cifar_stem"):
        SimCLRModel(tiny_config(backbone="efficientnet_b0"))


def test_config_round_trip_and_auto_registration(tmp_path: Path) -> None:
    config = tiny_config(projection_layers=3, loss_temperature=0.2)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, SimCLRConfig)
    assert loaded.projection_layers == 3 and loaded.loss_temperature == 0.2 and loaded.cifar_stem


def test_cifar_stem_keeps_32px_resolution() -> None:
    model = SimCLRModel(tiny_config()).eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.pooler_output.shape == (2, 512)
    assert out.last_hidden_state.shape == (2, 512, 4, 4)  # stride 8 instead of 32
    plain = SimCLRModel(tiny_config(cifar_stem=False)).eval()
    assert plain(torch.randn(2, 3, 32, 32)).last_hidden_state.shape == (2, 512, 1, 1)


def test_timm_initialisation_survives_post_init() -> None:
    torch.manual_seed(0)
    model = SimCLRForPreTraining(tiny_config())
    backbone = model.simclr.backbone
    # timm zero-initialises the last BN of every residual block; transformers' default would set it to 1.
    assert torch.count_nonzero(backbone.layer1[0].bn2.weight) == 0
    # Kaiming (fan_out) convs, not N(0, 0.02).
    assert backbone.layer2[0].conv1.weight.std() > 0.04


@pytest.mark.parametrize("layers, expected_dim", [(0, 512), (1, 128), (2, 128), (3, 64)])
def test_projection_head_depths(layers: int, expected_dim: int) -> None:
    config = tiny_config(projection_layers=layers, projection_dim=128 if layers < 3 else 64)
    model = SimCLRForPreTraining(config)
    out = model(torch.randn(3, 2, 3, 32, 32))
    assert out.z.shape == (6, expected_dim) and out.h.shape == (6, 512)
    assert torch.isfinite(out.loss)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.projection_head.modules())
    assert n_linear == layers


def test_pretraining_output_accepts_both_view_layouts() -> None:
    torch.manual_seed(0)
    model = SimCLRForPreTraining(tiny_config()).eval()
    views = torch.randn(4, 2, 3, 32, 32)
    stacked = model(views)
    concatenated = model(torch.cat([views[:, 0], views[:, 1]]))
    torch.testing.assert_close(stacked.loss, concatenated.loss)
    assert 0.0 <= stacked.contrastive_top1.item() <= stacked.contrastive_top5.item() <= 1.0


def test_wrong_number_of_views_and_batch_of_one_raise() -> None:
    model = SimCLRForPreTraining(tiny_config())
    with pytest.raises(ValueError, match="exactly 2 views"):
        model(torch.randn(2, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="even"):
        model(torch.randn(3, 3, 32, 32))
    with pytest.raises(ValueError, match="at least 2 images"):
        model.eval()(torch.randn(1, 2, 3, 32, 32))


def test_save_load_round_trip_is_bit_exact(tmp_path: Path) -> None:
    model = SimCLRForPreTraining(tiny_config())
    model.train()(torch.randn(4, 2, 3, 32, 32))  # move BN running stats away from their init
    model.save_pretrained(tmp_path)
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path)
    assert isinstance(loaded, SimCLRForPreTraining)
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key


def test_encoder_and_classifier_load_from_a_pretraining_folder(tmp_path: Path) -> None:
    model = SimCLRForPreTraining(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    encoder = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(encoder, SimCLRModel)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x).pooler_output, model.simclr(x).pooler_output, atol=0, rtol=0)

    classifier = AutoModelForImageClassification.from_pretrained(tmp_path, num_labels=10)
    assert isinstance(classifier, SimCLRForImageClassification)
    out = classifier(x, labels=torch.tensor([1, 9]))
    assert out.logits.shape == (2, 10) and torch.isfinite(out.loss)
    out.loss.backward()
    with pytest.raises(ValueError, match="labels"):
        classifier(x, labels=torch.tensor([0, 10]))
