"""Loading image datasets into one layout (real CIFAR-10, generated STL-10 and imagefolder data), decoding."""

from __future__ import annotations

import os
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
import torch
from PIL import Image

from hf_simclr.augmentation import augmentation_preset
from hf_simclr.data import (
    ImageViewDataset,
    class_names,
    decode_images,
    decode_labels,
    load_image_dataset,
)
from hf_simclr.transforms import decode_image, two_view_batch_transform

STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """Keep the caches `load_dataset` writes for generated data inside the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def random_images(count: int, size: tuple[int, int] = (96, 96), seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(count)
    ]


@pytest.fixture
def stl10_dir(tmp_path, hf_cache) -> Path:
    """Parquet files in the layout of the Hub's STL-10 copies: `image`, `label` (-1 when unlabeled)."""
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=STL10_CLASSES)}
    )
    for split, count in (("train", 6), ("test", 4), ("unlabeled", 8)):
        labels = [-1] * count if split == "unlabeled" else [i % 10 for i in range(count)]
        split_data = datasets.Dataset.from_dict(
            {"image": random_images(count), "label": labels}, features=features
        )
        split_data.to_parquet(str(tmp_path / "stl10" / "data" / f"{split}-00000-of-00001.parquet"))
    return tmp_path / "stl10"


def test_real_cifar10_copy(cifar10_path):
    train = load_image_dataset(str(cifar10_path), split="train")
    assert len(train) == 50_000
    subset = load_image_dataset(str(cifar10_path), split="train", max_samples=64, seed=1)
    assert subset.column_names == ["image", "label"]  # `img` renamed
    assert len(subset) == 64
    assert class_names(subset)[:3] == ["airplane", "automobile", "bird"]
    labels = decode_labels(subset)
    assert labels.dtype == torch.int64 and labels.shape == (64,)
    assert 0 <= labels.min() and labels.max() <= 9
    again = load_image_dataset(str(cifar10_path), split="train", max_samples=64, seed=1)
    other = load_image_dataset(str(cifar10_path), split="train", max_samples=64, seed=2)
    assert torch.equal(decode_labels(again), labels)
    assert not torch.equal(decode_labels(other), labels)
    assert subset[0]["image"].size == (32, 32)
    assert len(load_image_dataset(str(cifar10_path), split="test", require_labels=True)) == 10_000


def test_real_cifar10_slice_through_a_dataloader(cifar10_path):
    subset = load_image_dataset(str(cifar10_path), max_samples=32)
    views = ImageViewDataset(
        subset, two_view_batch_transform(augmentation_preset("cifar10"), label_column="label")
    )
    batch = next(iter(torch.utils.data.DataLoader(views, batch_size=16, shuffle=True)))
    assert batch["pixel_values"].shape == (16, 2, 3, 32, 32)
    assert batch["label"].shape == (16,)


def test_stl10_layout_splits(stl10_dir):
    train = load_image_dataset(str(stl10_dir), split="train", require_labels=True)
    assert (len(train), train.column_names) == (6, ["image", "label"])
    assert train[0]["image"].size == (96, 96)
    assert class_names(train) == STL10_CLASSES
    unlabeled = load_image_dataset(str(stl10_dir), split="unlabeled")
    assert decode_labels(unlabeled).tolist() == [-1] * 8
    both = load_image_dataset(str(stl10_dir), split="train+unlabeled")
    assert len(both) == 14
    assert decode_labels(both).tolist()[5:7] == [5, -1]
    with pytest.raises(ValueError, match=r"8 of 14 rows of --split train\+unlabeled have no label"):
        load_image_dataset(str(stl10_dir), split="train+unlabeled", require_labels=True)
    with pytest.raises(
        ValueError, match=r"has no split 'validation'; its splits are \['test', 'train', 'unlabeled'\]"
    ):
        load_image_dataset(str(stl10_dir), split="train+validation")


def test_max_samples_larger_than_split_keeps_all(stl10_dir):
    assert len(load_image_dataset(str(stl10_dir), split="test", max_samples=100)) == 4
    with pytest.raises(ValueError, match="max_samples=0 must be at least 1"):
        load_image_dataset(str(stl10_dir), max_samples=0)


def test_imagefolder(tmp_path, hf_cache):
    for class_name, mode in (("cat", "RGB"), ("dog", "L")):
        (tmp_path / "pets" / class_name).mkdir(parents=True)
        for index, image in enumerate(random_images(3, size=(40, 30))):
            image.convert(mode).save(tmp_path / "pets" / class_name / f"{index}.png")
    pets = load_image_dataset(str(tmp_path / "pets"), require_labels=True)
    assert (len(pets), pets.column_names) == (6, ["image", "label"])
    assert class_names(pets) == ["cat", "dog"]
    images = decode_images(pets, image_size=24)  # 40x30 images: shorter side resized, center crop
    assert images.shape == (6, 3, 24, 24)


def test_save_to_disk_folders(tmp_path):
    features = datasets.Features(
        {
            "picture": datasets.Image(),
            "fine_label": datasets.Value("int64"),
            "caption": datasets.Value("string"),
        }
    )
    rows = {"picture": random_images(3, size=(32, 32)), "fine_label": [0, 1, 2], "caption": ["a", "b", "c"]}
    train = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict(train=train, test=train.select([0])).save_to_disk(str(tmp_path / "dict"))
    loaded = load_image_dataset(str(tmp_path / "dict"))
    assert loaded.column_names == ["image", "label"]  # the only Image column; `fine_label`; caption dropped
    assert decode_labels(loaded).tolist() == [0, 1, 2]
    assert class_names(loaded) == ["0", "1", "2"]  # integers encoded as a ClassLabel, numbers kept
    assert len(load_image_dataset(str(tmp_path / "dict"), split="test")) == 1

    train.save_to_disk(str(tmp_path / "single"))  # a Dataset with no split name answers to "train"
    assert len(load_image_dataset(str(tmp_path / "single"), split="train")) == 3
    with pytest.raises(ValueError, match=r"has no split 'test'; its splits are \['train'\]"):
        load_image_dataset(str(tmp_path / "single"), split="test")


def test_empty_split(monkeypatch):
    # datasets itself refuses to load an empty split from files or from save_to_disk; the check
    # guards the other routes (e.g. a dataset script), so it is fed a split directly.
    features = datasets.Features({"image": datasets.Image()})
    splits = {
        "train": datasets.Dataset.from_dict({"image": random_images(1, size=(8, 8))}, features=features),
        "validation": datasets.Dataset.from_dict({"image": []}, features=features),
    }
    monkeypatch.setattr("hf_simclr.data._load_splits", lambda *args: splits)
    with pytest.raises(
        ValueError, match=r"--split validation of 'some/data' is empty; non-empty splits: \['train'\]"
    ):
        load_image_dataset("some/data", split="validation")


def test_column_errors(tmp_path):
    features = datasets.Features({"img": datasets.Image(), "name": datasets.Value("string")})
    data = datasets.Dataset.from_dict(
        {"img": random_images(2, size=(8, 8)), "name": ["x", "y"]}, features=features
    )
    data.save_to_disk(str(tmp_path / "named"))
    path = str(tmp_path / "named")
    assert load_image_dataset(path).column_names == ["image"]  # no label column is fine...
    with pytest.raises(ValueError, match="--split train has no label column .* labels are needed here"):
        load_image_dataset(path, require_labels=True)  # ...unless labels are required
    with pytest.raises(ValueError, match=r"--image_column photo not in \['img', 'name'\]"):
        load_image_dataset(path, image_column="photo")
    with pytest.raises(ValueError, match=r"--label_column label not in \['img', 'name'\]"):
        load_image_dataset(path, label_column="label")
    with pytest.raises(ValueError, match="--image_column name holds Value"):
        load_image_dataset(path, image_column="name")
    datasets.Dataset.from_dict({"text": ["a"]}).save_to_disk(str(tmp_path / "text"))
    with pytest.raises(ValueError, match=r"no image column found among \{'text': .*\}; pass --image_column"):
        load_image_dataset(str(tmp_path / "text"))


def test_offline_hub_name_and_missing_directory(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Both libraries read the variables at import: set the flags they already hold, too.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        ValueError,
        match=r"--dataset_name uoft-cs/cifar10: cannot load it from the Hub \(offline, or no such dataset\)",
    ):
        load_image_dataset("uoft-cs/cifar10")
    with pytest.raises(ValueError, match="save_to_disk"):
        load_image_dataset("jxie/stl10", split="unlabeled", revision="main")
    with pytest.raises(ValueError, match="no such directory"):
        load_image_dataset("./no/such/folder")


def test_decode_images_matches_pil_and_caches(cifar10_path, tmp_path, monkeypatch):
    subset = load_image_dataset(str(cifar10_path), split="test").select(range(50))
    images = decode_images(subset, image_size=32)
    assert images.shape == (50, 3, 32, 32) and images.dtype == torch.uint8
    expected = np.asarray(decode_image(subset[7]["image"])).transpose(2, 0, 1)
    assert np.array_equal(images[7].numpy(), expected)

    cache_file = tmp_path / "cache" / "cifar10-test-32.npy"
    torch.testing.assert_close(decode_images(subset, 32, cache_file=cache_file), images)
    assert sorted(os.listdir(cache_file.parent)) == [cache_file.name]  # no temporary file left
    monkeypatch.setattr("hf_simclr.data._decode_into", lambda *args: pytest.fail("decoded again"))
    cached = decode_images(subset, 32, cache_file=cache_file)
    torch.testing.assert_close(cached, images)
    cached[0] = 0  # copy-on-write map: memory changes, the file does not
    torch.testing.assert_close(torch.from_numpy(np.load(cache_file))[0], images[0])


def test_decode_images_rewrites_a_stale_cache_atomically(tmp_path):
    features = datasets.Features({"image": datasets.Image()})
    data = datasets.Dataset.from_dict({"image": random_images(5, size=(16, 16))}, features=features)
    cache_file = tmp_path / "images.npy"
    assert decode_images(data, 16, cache_file=cache_file).shape == (5, 3, 16, 16)
    assert decode_images(data, 8, cache_file=cache_file).shape == (5, 3, 8, 8)  # shape differs: rewritten
    assert np.load(cache_file).shape == (5, 3, 8, 8)

    broken = data.cast_column("image", datasets.Image(decode=False)).map(
        lambda row, index: {
            "image": {"bytes": b"broken" if index == 3 else row["image"]["bytes"], "path": None}
        },
        with_indices=True,
    )
    with pytest.raises(ValueError, match="row 3 of the dataset: cannot decode image"):
        decode_images(broken.cast_column("image", datasets.Image()), 8, cache_file=tmp_path / "new.npy")
    assert sorted(os.listdir(tmp_path)) == ["images.npy"]  # neither the new file nor its temporary
