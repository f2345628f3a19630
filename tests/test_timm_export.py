"""timm export: a stock-architecture encoder loads in timm (local-dir and hf-hub) with the same features."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import timm
import torch
from builders import pretraining_folder
from transformers import AutoConfig, AutoModel

from hf_simclr import SimCLRModel
from hf_simclr.timm_export import export_timm, timm_export_is_current


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    folder = pretraining_folder(tmp_path_factory.mktemp("timm") / "model", cifar_stem=False)
    export_timm(folder)
    return folder


def features_max_difference(timm_model: torch.nn.Module, folder: Path) -> float:
    pixel_values = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    encoder = SimCLRModel.from_pretrained(folder).eval()
    with torch.no_grad():
        return (timm_model.eval()(pixel_values) - encoder(pixel_values).pooler_output).abs().max().item()


def test_timm_local_dir_gives_the_same_pooled_features(exported: Path) -> None:
    model = timm.create_model(f"local-dir:{exported / 'timm'}", pretrained=True)
    assert model.num_classes == 0 and tuple(model.pretrained_cfg["input_size"]) == (3, 32, 32)
    assert features_max_difference(model, exported) < 1e-5


def test_timm_hf_hub_after_a_push_gives_the_same_pooled_features(exported, tmp_path, monkeypatch) -> None:
    # The pushed repository, as the Hub cache holds it after a download (no network: offline mode).
    repo = tmp_path / "hub" / "models--org--simclr-resnet18"
    shutil.copytree(exported, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model = timm.create_model("hf-hub:org/simclr-resnet18", pretrained=True)
    assert features_max_difference(model, exported) < 1e-5


def test_transformers_still_loads_the_folder_and_keeps_no_timm_keys(exported: Path, tmp_path: Path) -> None:
    assert json.loads((exported / "config.json").read_text())["architecture"] == "resnet18"
    encoder = AutoModel.from_pretrained(exported)
    assert isinstance(encoder, SimCLRModel) and not hasattr(encoder.config, "pretrained_cfg")
    encoder.save_pretrained(tmp_path / "copy")  # a folder saved from it claims no timm copy
    assert "architecture" not in json.loads((tmp_path / "copy" / "config.json").read_text())
    assert AutoConfig.from_pretrained(exported).model_type == "simclr"
    # transformers' own timm wrapper reads the subfolder too.
    wrapper = AutoModel.from_pretrained(exported / "timm").eval()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = SimCLRModel.from_pretrained(exported).eval()(pixel_values).pooler_output
        assert (wrapper(pixel_values).pooler_output - expected).abs().max() < 1e-5


def test_a_copy_of_older_weights_is_not_current(exported: Path, tmp_path: Path) -> None:
    assert timm_export_is_current(exported)
    folder = Path(shutil.copytree(exported, tmp_path / "model"))
    pretraining_folder(folder, cifar_stem=False, seed=1)  # re-saved after the export: new weights
    assert not timm_export_is_current(folder)


def test_cifar_stem_is_refused_with_the_reason(tmp_path: Path) -> None:
    folder = pretraining_folder(tmp_path / "model", cifar_stem=True)
    with pytest.raises(ValueError, match="CIFAR stem .* not a stock timm architecture"):
        export_timm(folder)
    assert not (folder / "timm").exists() and not any(p.name.startswith(".tmp") for p in folder.iterdir())


def test_an_export_killed_half_way_is_cleared_by_the_next(tmp_path: Path) -> None:
    folder = pretraining_folder(tmp_path / "model", cifar_stem=False)
    (folder / ".tmp-timm").mkdir()
    (folder / ".tmp-timm" / "model.safetensors").write_bytes(b"half written")  # a SIGKILL mid-export
    export_timm(folder)
    assert not (folder / ".tmp-timm").exists() and timm_export_is_current(folder)
