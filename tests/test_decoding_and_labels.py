"""Images and labels read as `datasets` and transformers read them; a dataset known by its content.

An EXIF-rotated phone photo gives the same pixels through every decoding path of the package as through
`datasets` and `transformers.image_utils.load_image`; string and integer label columns become `ClassLabel`s
with their class names kept, in the probe and in fine-tuning; an imagefolder without labels is explained
in its own layout; a moved copy of a dataset has the identity of the original, a changed one another.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from builders import CLASSES, colour_images, save_tiny_dataset, save_tiny_model
from PIL import ExifTags, Image
from transformers import pipeline
from transformers.image_utils import load_image

from hf_simclr.augmentation import augmentation_preset
from hf_simclr.data import (
    ImageViewDataset,
    class_names,
    decode_images,
    decode_labels,
    decoded_cache_file,
    load_image_dataset,
)
from hf_simclr.evaluation.arguments import LinearProbeArguments
from hf_simclr.evaluation.features import extract_features, load_frozen_model
from hf_simclr.evaluation.probe import run_linear_probe
from hf_simclr.finetuning.arguments import FinetuneArguments
from hf_simclr.finetuning.run import load_labeled_splits
from hf_simclr.identity import dataset_identity
from hf_simclr.image_processing_simclr import SimCLRImageProcessor
from hf_simclr.image_view import eval_view, to_model_input
from hf_simclr.transforms import FinetuneTransform, TwoViewTransform, decode_image, eval_batch_transform

VIEW = 32  # the tiny model's view size


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The tiny model folder (32 px views), as pretraining saves it."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "model", log_history=False)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """Keep the caches `load_dataset` writes for generated data inside the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


# ----------------------------------------------------------------------------------------------
# One image decoding: EXIF orientation applied everywhere, as datasets and load_image apply it
# ----------------------------------------------------------------------------------------------


def phone_photo(path: Path) -> Path:
    """A 48x32 JPEG stored sideways with EXIF orientation 6, as phones write them: seen upright it is 32x48."""
    rows, columns = np.mgrid[0:32, 0:48]
    pixels = np.stack([columns * 5, rows * 7, (rows + columns) % 2 * 200], axis=-1).astype(np.uint8)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(pixels).save(path, "JPEG", exif=exif, quality=95)
    return path


def test_an_exif_rotated_photo_gives_the_same_pixels_everywhere(tmp_path, model_dir):
    photo = phone_photo(tmp_path / "photo.jpg")
    upright = load_image(str(photo))  # transformers: the pipeline's reading
    assert upright.size == (32, 48)
    by_path = datasets.Dataset.from_dict(
        {"image": [str(photo)]}, features=datasets.Features(image=datasets.Image())
    )
    by_bytes = datasets.Dataset.from_dict(  # a parquet or Hub dataset holds the file's bytes
        {"image": [{"bytes": photo.read_bytes(), "path": None}]}, features=by_path.features
    )
    assert np.array_equal(np.asarray(by_path[0]["image"].convert("RGB")), np.asarray(upright))  # datasets
    view = eval_view(upright, VIEW)
    sideways = Image.fromarray(np.asarray(Image.open(photo)))  # the stored pixels, without the EXIF tag
    assert not np.array_equal(eval_view(sideways, VIEW), view)  # the orientation matters

    for value in (
        Image.open(photo),
        {"bytes": photo.read_bytes(), "path": None},
        {"bytes": None, "path": str(photo)},
    ):
        assert np.array_equal(np.asarray(decode_image(value)), np.asarray(upright))
    for rows in (by_path, by_bytes):  # the decoded split: pretraining on the GPU, the kNN monitor, the probe
        assert np.array_equal(decode_images(rows, VIEW)[0].numpy(), view)
    model_input = to_model_input(torch.from_numpy(view)[None], (0.5,) * 3, (0.25,) * 3)
    config = augmentation_preset("cifar10", image_size=VIEW)
    evaluation = ImageViewDataset(by_path, eval_batch_transform(config, label_column=None))
    torch.testing.assert_close(
        evaluation[0]["pixel_values"],
        to_model_input(torch.from_numpy(view)[None], config.mean, config.std)[0],
    )
    processor = SimCLRImageProcessor(image_size=VIEW, image_mean=(0.5,) * 3, image_std=(0.25,) * 3)
    for image in (Image.open(photo), upright):  # an image opened with PIL, or already upright
        torch.testing.assert_close(processor(image)["pixel_values"], model_input)
    for transform in (TwoViewTransform(config), FinetuneTransform(config)):  # the random training views
        torch.manual_seed(0)
        raw = transform(Image.open(photo))
        torch.manual_seed(0)
        torch.testing.assert_close(raw, transform(upright))

    # The saved pipeline, from the file's path, gives the evaluation's h.
    model = load_frozen_model(model_dir)
    h = extract_features(model.encoder, decode_images(by_path, VIEW), model.view, "cpu")["h"]
    extractor = pipeline("image-feature-extraction", model=str(model_dir), trust_remote_code=True)
    features = extractor(str(photo), pool=True, return_tensors=True)
    torch.testing.assert_close(features.reshape(h.shape), h, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Label columns of strings or integers, encoded as datasets encodes them, with their class names
# ----------------------------------------------------------------------------------------------

ANIMALS = ["dog", "cat", "automobile"]  # colour class i is ANIMALS[i]: sorted, the class numbers change


def string_label_dataset(folder: Path, column: str = "label", test_classes: int = 3) -> Path:
    """A save_to_disk DatasetDict whose labels are strings; its test split may lack the last classes."""
    splits = {}
    for split, count, seed, classes in (("train", 8, 0, 3), ("test", 4, 1, test_classes)):
        labels = [label for label in range(classes) for _ in range(count)]
        splits[split] = datasets.Dataset.from_dict(
            {"image": colour_images(labels, seed), column: [ANIMALS[label] for label in labels]},
            features=datasets.Features({"image": datasets.Image(), column: datasets.Value("string")}),
        )
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return folder


def test_string_labels_become_class_labels_with_the_same_numbers_in_every_split(tmp_path):
    folder = str(string_label_dataset(tmp_path / "animals", column="animal", test_classes=2))
    train = load_image_dataset(folder, label_column="animal", require_labels=True)
    test = load_image_dataset(folder, split="test", label_column="animal", require_labels=True)
    assert class_names(train) == class_names(test) == sorted(ANIMALS)  # as class_encode_column names them
    assert decode_labels(train).tolist() == [2] * 8 + [1] * 8 + [0] * 8  # dog, cat, automobile
    assert decode_labels(test).tolist() == [2] * 4 + [1] * 4  # no automobile in test: the numbers still agree
    reference = datasets.load_from_disk(folder)["train"].class_encode_column("animal")
    assert reference.features["animal"].names == class_names(train)
    assert reference["animal"] == decode_labels(train).tolist()


def test_integer_labels_keep_their_numbers_and_unlabeled_rows_stay_unlabeled(tmp_path):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int32")})
    images = colour_images([0] * 5, seed=0)
    datasets.Dataset.from_dict(
        {"image": images, "label": [3, 7, -1, 3, None]}, features=features
    ).save_to_disk(str(tmp_path / "gaps"))
    gaps = load_image_dataset(str(tmp_path / "gaps"))
    assert class_names(gaps) == ["3", "7"] and decode_labels(gaps).tolist() == [0, 1, -1, 0, -1]
    with pytest.raises(
        ValueError, match=r"2 of 5 rows of --split train have no label \(-1 or empty in column 'label'\)"
    ):
        load_image_dataset(str(tmp_path / "gaps"), require_labels=True)
    floats = datasets.Features({"image": datasets.Image(), "score": datasets.Value("float32")})
    datasets.Dataset.from_dict({"image": images, "score": [0.5] * 5}, features=floats).save_to_disk(
        str(tmp_path / "f")
    )
    with pytest.raises(ValueError, match=r"--label_column score holds Value\('float32'\), not class labels"):
        load_image_dataset(str(tmp_path / "f"), label_column="score")


def test_the_probe_takes_string_labels_and_keeps_their_names(tmp_path, model_dir):
    data = string_label_dataset(tmp_path / "animals")
    results = run_linear_probe(
        LinearProbeArguments(
            str(model_dir),
            dataset_name=str(data),
            output_dir=str(tmp_path / "probe"),
            features="h",
            knn_k=[3],
            label_fractions=[],
            skip_baseline=True,
            max_iter=20,
            device="cpu",
        )
    )
    assert results["class_names"] == sorted(ANIMALS)
    assert [row["name"] for row in results["per_class"]] == sorted(ANIMALS)


def test_fine_tuning_loads_string_labels_with_their_names(tmp_path, model_dir):
    args = FinetuneArguments(
        str(model_dir), dataset_name=str(string_label_dataset(tmp_path / "animals")), label_fraction=0.5
    )
    train, test, names, train_size = load_labeled_splits(args)
    assert names == sorted(ANIMALS) and train_size == 24 and len(train) == 12
    assert sorted(set(decode_labels(train).tolist())) == [0, 1, 2]
    batch = ImageViewDataset(test, eval_batch_transform(augmentation_preset("cifar10"))).__getitems__([0, 11])
    assert [row["label"] for row in batch] == [2, 0]  # dog, automobile: numbers the classifier trains on


# ----------------------------------------------------------------------------------------------
# Messages in the user's terms: their folder layout, their rows and files
# ----------------------------------------------------------------------------------------------


def test_an_imagefolder_with_a_sub_folder_is_explained_in_its_layout(tmp_path, hf_cache):
    pets = tmp_path / "pets"
    for relative, image in zip(
        ("cat/1.png", "cat/kittens/2.png", "dog/3.png"), colour_images([0, 1, 2], 0), strict=True
    ):
        (pets / relative).parent.mkdir(parents=True, exist_ok=True)
        image.save(pets / relative)
    with pytest.raises(ValueError) as refused:
        load_image_dataset(str(pets), split_flag="train_split", require_labels=True)
    message = str(refused.value)
    assert f"--train_split train of {pets} has no labels: datasets' imagefolder names" in message
    assert "images lie at different depths (cat/1.png and cat/kittens/2.png)" in message
    assert "<class>/<image>" in message and "sub-folders such as cat/kittens" in message
    assert "pass --label_column" not in message  # there is no column to pass


def test_an_undecodable_file_is_named_by_its_row_in_the_split_and_its_path(tmp_path, hf_cache):
    pets = tmp_path / "pets"
    for index, image in enumerate(colour_images([0, 0, 0, 1, 1, 1], 0)):
        (pets / CLASSES[index // 3]).mkdir(parents=True, exist_ok=True)
        image.save(pets / CLASSES[index // 3] / f"{index}.png")
    (pets / "green" / "4.png").write_bytes(b"not a png")
    split = load_image_dataset(str(pets))

    def position_of_the_bad_file(rows: datasets.Dataset) -> int:
        paths = [value["path"] for value in rows.cast_column("image", datasets.Image(decode=False))["image"]]
        return next(position for position, path in enumerate(paths) if path.endswith("4.png"))

    row = position_of_the_bad_file(split)
    subset = split.shuffle(seed=1)  # as a --max_*_samples subset is drawn
    assert (
        position_of_the_bad_file(subset) != row
    )  # shuffled: the subset's positions are not the split's rows
    with pytest.raises(
        ValueError, match=rf"row {row} of split 'train' \(file {pets}/green/4.png\): cannot decode image"
    ):
        decode_images(subset, 8)


def test_a_row_of_joined_splits_is_named_in_the_split_it_came_from(tmp_path, hf_cache):
    features = datasets.Features({"image": datasets.Image()})
    for split, broken in (("train", None), ("unlabeled", 1)):
        rows = [{"bytes": b"not a png" if index == broken else None, "path": None} for index in range(3)]
        for index, image in enumerate(colour_images([0, 1, 2], 0)):
            if index != broken:
                buffer = io.BytesIO()
                image.save(buffer, "PNG")
                rows[index]["bytes"] = buffer.getvalue()
        data = datasets.Dataset.from_dict({"image": rows}, features=features)
        data.to_parquet(str(tmp_path / "stl" / "data" / f"{split}-00000-of-00001.parquet"))
    both = load_image_dataset(str(tmp_path / "stl"), split="train+unlabeled")
    with pytest.raises(ValueError, match=r"row 1 of split 'unlabeled': cannot decode image"):
        decode_images(both, 8)


# ----------------------------------------------------------------------------------------------
# The identity of a dataset: its content, not its folder
# ----------------------------------------------------------------------------------------------


def parquet_folder(folder: Path) -> Path:
    """The tiny dataset as parquet files, as a Hub dataset or a staged copy holds it."""
    for split, data in datasets.load_from_disk(str(save_tiny_dataset(folder.with_suffix(".saved")))).items():
        data.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def imagefolder(folder: Path) -> Path:
    for index, image in enumerate(colour_images([0, 1, 2] * 2, 0)):
        (folder / CLASSES[index % 3]).mkdir(parents=True, exist_ok=True)
        image.save(folder / CLASSES[index % 3] / f"{index}.png")
    return folder


def rewrite(build, original: Path, folder: Path, train: datasets.Dataset) -> Path:
    """`folder`: a copy of `original` whose training split holds `train` instead, in the same format."""
    if build is parquet_folder:
        shutil.copytree(original, folder)
        train.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    else:
        test = datasets.load_from_disk(str(original))["test"]
        datasets.DatasetDict(train=train, test=test).save_to_disk(str(folder))
    return folder


@pytest.mark.parametrize("build", [parquet_folder, imagefolder, save_tiny_dataset])
def test_a_moved_copy_has_the_identity_of_the_original_and_a_changed_one_does_not(tmp_path, hf_cache, build):
    original = build(tmp_path / "original")
    copy = Path(shutil.copytree(original, tmp_path / "scratch" / "copy"))  # the data staged to local scratch
    first, moved = (load_image_dataset(str(folder)) for folder in (original, copy))
    assert dataset_identity(moved) == dataset_identity(first)
    assert decoded_cache_file(tmp_path, moved, 8) == decoded_cache_file(tmp_path, first, 8)
    if (
        build is not save_tiny_dataset
    ):  # load_dataset's fingerprint goes by the folder (save_to_disk keeps its own)
        assert moved._fingerprint != first._fingerprint

    selections = [{"max_samples": 5}, {"max_samples": 4}, {"max_samples": 5, "seed": 1}]
    if build is not imagefolder:  # an imagefolder without split folders has one split
        selections.append({"split": "test"})
    identities = {
        dataset_identity(load_image_dataset(str(original), **selection)) for selection in selections
    }
    assert len(identities | {dataset_identity(first)}) == len(selections) + 1

    other_image = colour_images([2], seed=5)[0]
    if build is imagefolder:  # one image changed in the copy, then one image more
        other_image.save(copy / "red" / "0.png")
        changed = load_image_dataset(str(copy))
        other_image.save(copy / "red" / "extra.png")
        more = load_image_dataset(str(copy))
    else:
        rows = datasets.load_from_disk(str(save_tiny_dataset(tmp_path / "rows")))["train"]
        changed_rows = rows.map(
            lambda row, index: {"image": other_image if index == 3 else row["image"]}, with_indices=True
        )
        changed = load_image_dataset(str(rewrite(build, original, tmp_path / "changed", changed_rows)))
        more_rows = datasets.concatenate_datasets([rows, rows.select([0])])
        more = load_image_dataset(str(rewrite(build, original, tmp_path / "more", more_rows)))
    assert len(changed) == len(first) and len(more) == len(first) + 1
    assert len({dataset_identity(first), dataset_identity(changed), dataset_identity(more)}) == 3
