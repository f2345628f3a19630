"""Shared fixtures: where the real CIFAR-10 copy lives, and small generated image datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def cifar10_dir() -> Path:
    """The local CIFAR-10 copy (layout of `uoft-cs/cifar10`), beside the repository in `../shared`.

    `HF_SIMCLR_CIFAR10` overrides the location.
    """
    return Path(os.environ.get("HF_SIMCLR_CIFAR10", REPO_ROOT.parent / "shared" / "datasets" / "cifar10"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that needs the real CIFAR-10 copy (directly or through another fixture) is `slow`:
    `-m "not slow"` is the fast tier, which needs no dataset but small generated ones."""
    for item in items:
        if "cifar10_path" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def cifar10_path() -> Path:
    path = cifar10_dir()
    if not (path / "data").is_dir():
        pytest.skip(
            f"CIFAR-10 copy not found at {path}; set HF_SIMCLR_CIFAR10 to the folder that holds data/*.parquet."
        )
    return path


@pytest.fixture
def online_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token, and offline mode off whatever the environment says (HF_HUB_OFFLINE is read at import too):
    for tests that replace the Hub's network calls and go through the package's offline check."""
    import huggingface_hub

    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="session")
def tiny_probe(tmp_path_factory: pytest.TempPathFactory):
    """One full probe run (plots, random-init baseline, kNN k=3 and 200, label fractions 0.25 and 0.5) of the
    tiny model on the tiny colour dataset, shared by the evaluation's and the Hub's tests: `(arguments,
    results, model folder)`. Read it only; a test that changes the folder works on a copy."""
    from builders import save_tiny_dataset, save_tiny_model

    from hf_simclr.evaluation.arguments import LinearProbeArguments
    from hf_simclr.evaluation.probe import run_linear_probe

    root = tmp_path_factory.mktemp("probe")
    model_dir = save_tiny_model(root / "model")
    args = LinearProbeArguments(
        model_name_or_path=str(model_dir),
        dataset_name=str(save_tiny_dataset(root / "data")),
        batch_size=16,
        knn_k=[3, 200],
        label_fractions=[0.25, 0.5],
        plots=True,
        max_iter=100,
        device="cpu",
    )
    return args, run_linear_probe(args), model_dir
