"""Any `datasets` source: WebDataset shards, `--streaming` (read once into a local map-style copy), and a
local folder listed once to choose its data files, with clear errors for sources that cannot work."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import datasets
import pytest
from builders import CLASSES, colour_images, save_tiny_dataset, tiny_pretraining

from hf_simclr import data, sources
from hf_simclr.arguments import UsageError
from hf_simclr.data import decode_labels, load_image_dataset
from hf_simclr.folder_format import LOG_HISTORY_FILE
from hf_simclr.identity import dataset_identity
from hf_simclr.pretraining.data_arguments import DataArguments

LABELS = [index % 3 for index in range(24)]  # 24 images: tiny_pretraining's max_train_samples


@pytest.fixture(autouse=True)
def hf_cache(tmp_path, monkeypatch):
    """Keep the caches `load_dataset` and the streamed copies write inside the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def write_shards(
    folder: Path, labels: list[int], shards: int = 2, members: tuple[str, ...] = ("png", "cls")
) -> Path:
    """WebDataset shards as `webdataset`'s writers make them: samples `000.png` + `000.cls`, in order."""
    folder.mkdir(parents=True)
    images = colour_images(labels, seed=0)
    per_shard = len(labels) // shards
    for shard in range(shards):
        with tarfile.open(folder / f"shard-{shard:05d}.tar", "w") as tar:
            for index in range(shard * per_shard, (shard + 1) * per_shard):
                encoded = io.BytesIO()
                images[index].save(encoded, format="PNG")
                content = {"png": encoded.getvalue(), "cls": str(labels[index]).encode()}
                for member in members:
                    info = tarfile.TarInfo(f"{index:03d}.{member}")
                    info.size = len(content[member])
                    tar.addfile(info, io.BytesIO(content[member]))
    return folder


def write_parquet(folder: Path, labels: list[int]) -> Path:
    """Two parquet files of one `train` split (columns `img`, `label`, as uoft-cs/cifar10 names them)."""
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    rows = datasets.Dataset.from_dict(
        {"img": colour_images(labels, seed=1), "label": labels}, features=features
    )
    half = len(labels) // 2
    for part, indices in enumerate((range(half), range(half, len(labels)))):
        rows.select(indices).to_parquet(str(folder / "data" / f"train-{part:05d}-of-00002.parquet"))
    return folder


def write_imagefolder(folder: Path, labels: list[int]) -> Path:
    for index, (label, image) in enumerate(zip(labels, colour_images(labels, seed=2), strict=True)):
        (folder / CLASSES[label]).mkdir(parents=True, exist_ok=True)
        image.save(folder / CLASSES[label] / f"{index:03d}.png")
    return folder


def stored_images(dataset: datasets.Dataset) -> list[bytes]:
    """Each row's encoded image, its bytes or its file's bytes, in the dataset's order."""
    values = dataset.cast_column("image", datasets.Image(decode=False))["image"]
    return [value["bytes"] or Path(value["path"]).read_bytes() for value in values]


def losses(output_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (output_dir / LOG_HISTORY_FILE).read_text().splitlines()]
    return [record["loss"] for record in records if "loss" in record]


@pytest.mark.slow  # a pretraining run: ~5 s
def test_webdataset_shards_load_with_their_labels_and_pretrain(tmp_path):
    shards = write_shards(tmp_path / "shards", LABELS)
    loaded = load_image_dataset(str(shards))
    assert loaded.column_names == ["image", "label"]  # `png` found by its type, `cls` by its name
    assert decode_labels(loaded).tolist() == LABELS  # shard after shard, samples in order
    assert data.class_names(loaded) == ["0", "1", "2"]
    tiny_pretraining(tmp_path / "run", shards, max_steps=2, checkpointing_steps="none")
    assert len(losses(tmp_path / "run")) == 2


@pytest.mark.parametrize("layout", ["parquet", "imagefolder", "webdataset"])
def test_streaming_gives_the_rows_of_a_run_without_it(tmp_path, layout):
    writer = {"parquet": write_parquet, "imagefolder": write_imagefolder, "webdataset": write_shards}[layout]
    source = str(writer(tmp_path / layout, LABELS))
    loaded = load_image_dataset(source)
    streamed = load_image_dataset(source, streaming=True)
    # Same images, labels and classes in the same order: so the same batches, resume and decoded cache.
    assert stored_images(streamed) == stored_images(loaded)
    assert decode_labels(streamed).tolist() == decode_labels(loaded).tolist()
    assert streamed.features == loaded.features
    assert dataset_identity(streamed) == dataset_identity(loaded)
    # The seeded subset keeps its meaning: the same rows as without streaming.
    subset = load_image_dataset(source, max_samples=7, seed=3)
    streamed_subset = load_image_dataset(source, max_samples=7, seed=3, streaming=True)
    assert dataset_identity(streamed_subset) == dataset_identity(subset)
    assert stored_images(streamed_subset) == stored_images(subset)


def test_the_streamed_copy_is_reused_and_read_again_when_the_source_changes(tmp_path):
    source = write_imagefolder(tmp_path / "pets", LABELS)
    first = load_image_dataset(str(source), streaming=True)
    copy = Path(first.cache_files[0]["filename"])
    assert copy.is_relative_to(tmp_path / "hf_cache")  # in the datasets cache, where the help says
    written = copy.stat().st_mtime_ns
    again = load_image_dataset(str(source), streaming=True)
    assert again.cache_files == first.cache_files and copy.stat().st_mtime_ns == written  # not read again
    colour_images([0], seed=9)[0].save(source / "red" / "000.png")  # one image changed
    changed = load_image_dataset(str(source), streaming=True)
    assert changed.cache_files != first.cache_files
    assert dataset_identity(changed) == dataset_identity(load_image_dataset(str(source)))


@pytest.mark.slow  # two pretraining runs: ~9 s
def test_a_streaming_source_pretrains_as_without_streaming(tmp_path):
    source = write_parquet(tmp_path / "pq", LABELS)
    for name, streaming in (("plain", False), ("streamed", True)):
        tiny_pretraining(
            tmp_path / name, source, {"streaming": streaming}, max_steps=2, checkpointing_steps="none"
        )
    assert losses(tmp_path / "streamed") == losses(tmp_path / "plain")
    # The streamed run read the stream into its local copy (the flag reached the loading).
    assert list((tmp_path / "hf_cache" / "generator").glob("*/*/generator-train.arrow"))


def test_sources_that_cannot_work_are_refused_with_the_fix(tmp_path):
    with pytest.raises(UsageError, match=r"WebDataset shard shard-00001.tar holds no samples.*remove it"):
        shards = write_shards(tmp_path / "one_empty", LABELS)
        with tarfile.open(shards / "shard-00001.tar", "w"):
            pass
        load_image_dataset(str(shards))
    no_images = write_shards(tmp_path / "no_images", LABELS, members=("cls",))
    with pytest.raises(UsageError, match=r"shards hold no images: their samples have only 000.cls members"):
        load_image_dataset(str(no_images))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"cannot read the dataset in this folder \(EmptyDatasetError"):
        load_image_dataset(str(tmp_path / "empty"), streaming=True)
    saved = save_tiny_dataset(tmp_path / "saved")
    with pytest.raises(
        UsageError,
        match=r"--streaming with --dataset_name .*saved: a save_to_disk folder is read memory-mapped.*drop --streaming",
    ):
        DataArguments(dataset_name=str(saved), streaming=True)


def layouts(root: Path) -> list[Path]:
    """Folders whose splits `datasets` finds by different rules: class folders, split/class folders,
    split keywords in file names, sharded parquet names, and a split folder hidden under a dot folder."""
    write_imagefolder(root / "classes", LABELS[:6])
    for split in ("train", "test"):
        write_imagefolder(root / "splits" / split, LABELS[:6])
    (root / "names").mkdir()
    for name in ("train-a.png", "training_b.png", "test.png", "valid-c.png"):
        colour_images([0], seed=0)[0].save(root / "names" / name)
    write_parquet(root / "sharded", LABELS[:6])
    write_imagefolder(root / "hidden" / "images", LABELS[:3])
    write_imagefolder(root / "hidden" / ".cache" / "test", LABELS[:3])
    return sorted(root.iterdir())


def test_a_folder_is_listed_once_with_the_splits_datasets_finds(tmp_path, monkeypatch):
    for folder in layouts(tmp_path / "layouts"):
        expected = datasets.data_files.get_data_patterns(str(folder.resolve()))
        assert sources._local_data_patterns(folder) == expected, folder.name
    # datasets resolves (lists) each pattern it tries, ~60 of them: in the package, only the chosen ones.
    folder = tmp_path / "layouts" / "splits"
    chosen = [pattern for patterns in sources._local_data_patterns(folder).values() for pattern in patterns]
    resolved = []
    resolve = datasets.data_files.resolve_pattern

    def counted(pattern, *args, **kwargs):
        resolved.append(pattern)
        return resolve(pattern, *args, **kwargs)

    monkeypatch.setattr(datasets.data_files, "resolve_pattern", counted)
    assert len(load_image_dataset(str(folder), split="test")) == 6
    assert resolved == chosen, f"{len(resolved)} patterns listed, {len(chosen)} chosen"


def test_a_streamed_hub_dataset_stores_its_remote_images_as_bytes(tmp_path, monkeypatch):
    # A Hub stream whose images are remote files (hf://... in a real one; memory://... here, which fsspec
    # opens the same way) and not local paths: the copy holds their bytes, never their decoded pixels.
    import fsspec

    folder = write_imagefolder(tmp_path / "pets", LABELS[:6])
    local = load_image_dataset(str(folder))
    remote = fsspec.filesystem("memory")
    for index, encoded in enumerate(stored_images(local)):
        remote.pipe(f"/{tmp_path.name}/{index}.png", encoded)

    def rows():
        for index, label in enumerate(decode_labels(local).tolist()):
            yield {"image": {"path": f"memory://{tmp_path.name}/{index}.png", "bytes": None}, "label": label}

    stream = datasets.IterableDataset.from_generator(rows, features=local.features)
    monkeypatch.setattr(
        sources, "load_from_hub", lambda *args, **kwargs: datasets.IterableDatasetDict(train=stream)
    )
    monkeypatch.setattr(sources, "_hub_commit", lambda name, revision: "0123abc")
    streamed = load_image_dataset("someone/pets", streaming=True)
    stored = streamed.cast_column("image", datasets.Image(decode=False))["image"]
    assert all(value["bytes"] is not None for value in stored)
    assert dataset_identity(streamed) == dataset_identity(local)


def test_streamed_labels_are_numbered_across_splits_and_other_splits_read_only_for_that(
    tmp_path, monkeypatch
):
    # String labels: the classes come from every split (test lacks "blue"), as without streaming.
    source = tmp_path / "named"
    for split, labels in (("train", [0, 1, 2, 0]), ("test", [1, 0])):
        names = [CLASSES[label] for label in labels]
        rows = datasets.Dataset.from_dict({"image": colour_images(labels, seed=3), "label": names})
        rows.to_parquet(str(source / "data" / f"{split}-00000-of-00001.parquet"))
    for split in ("train", "test"):
        streamed = load_image_dataset(str(source), split=split, streaming=True)
        assert data.class_names(streamed) == ["blue", "green", "red"]
        assert (
            decode_labels(streamed).tolist()
            == decode_labels(load_image_dataset(str(source), split=split)).tolist()
        )
    # A ClassLabel needs no other split: only the split asked for is copied.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "second_cache"))
    labeled = write_parquet(tmp_path / "labeled", LABELS)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    test = datasets.Dataset.from_dict(
        {"img": colour_images([0, 1], seed=4), "label": [0, 1]}, features=features
    )
    test.to_parquet(str(labeled / "data" / "test-00000-of-00001.parquet"))
    assert len(load_image_dataset(str(labeled), streaming=True)) == len(LABELS)
    copies = [path.name for path in (tmp_path / "second_cache" / "generator").glob("*/*/*.arrow")]
    assert copies == ["generator-train.arrow"], copies
