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
