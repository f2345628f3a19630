"""The one rule for "a local path or a Hub id" (`paths.local_path`), as every job applies it."""

from __future__ import annotations

import pytest

from hf_simclr.arguments import UsageError
from hf_simclr.data import load_image_dataset
from hf_simclr.paths import local_path
from hf_simclr.reports.card import describe_dataset


@pytest.mark.parametrize("name", ["org/name", "name", "uoft-cs/cifar10"])
def test_a_name_that_is_not_a_path_here_is_a_hub_id(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert local_path(name) is None
    assert describe_dataset(name)["hub"] is True


@pytest.mark.parametrize("name", ["./runs/model", "../elsewhere", "~/data", "/abs/path"])
def test_a_name_that_can_only_be_a_path_is_local_even_when_absent(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert local_path(name) is not None
    assert describe_dataset(name)["hub"] is False


def test_an_existing_relative_folder_is_local_even_when_it_reads_like_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert local_path("org/name") == tmp_path.joinpath("org", "name").relative_to(tmp_path)
    assert describe_dataset("org/name")["hub"] is False


def test_the_loader_refuses_a_local_file_for_a_dataset_folder_instead_of_asking_the_hub(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.parquet").write_bytes(b"")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        load_image_dataset("data.parquet", split="train")
