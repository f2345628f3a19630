"""Where a dataset's rows come from: any `datasets` source opened as its splits, without reading it whole.

A local folder (parquet files, an imagefolder, WebDataset `.tar` shards, a `save_to_disk` folder) or a Hub
dataset, as `load_dataset` / `load_from_disk` open it (memory-mapped Arrow), with three things `datasets`
leaves to its user: a folder of many files listed once, not once per data-files pattern tried
([`_folder_listed_once`]); a stream (`streaming=True`) read once into a local map-style copy, which row
indices (the batch order, exact resume, seeded subsets) need ([`StreamedSplits`]); and errors that say
what to fix for sources `datasets` fails on unclearly ([`check_shards`]). [`hf_simclr.data`] puts the
splits in the package's one layout.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict

from .arguments import UsageError
from .folder_format import DATASET_FILES
from .paths import local_path, offline_unless_reachable


def load_local(path: Path, config_name: str | None, streaming: bool = False) -> Dataset | DatasetDict:
    """A `save_to_disk` folder, or parquet files / an imagefolder / WebDataset shards through `load_dataset`."""
    try:
        if any((path / name).is_file() for name in DATASET_FILES) and not streaming:
            return datasets.load_from_disk(str(path))
        with _folder_listed_once():
            return datasets.load_dataset(str(path), config_name, streaming=streaming)
    except (OSError, ValueError, datasets.exceptions.DatasetGenerationError) as error:
        raise UsageError(
            f"--dataset_name {path}: cannot read the dataset in this folder ({type(error).__name__}: {error}). "
            f"Pass a folder of parquet files, an imagefolder (class sub-folders of images), a folder of "
            f"WebDataset .tar shards or a save_to_disk folder, and check that its files are complete."
        ) from error


@contextmanager
def _folder_listed_once() -> Iterator[None]:
    """Inside the block, `load_dataset` of a local folder lists the folder once to choose its data files.

    To choose the splits and their files (train/test/validation in file or folder names, sharded parquet
    names, ...), `datasets.data_files.get_data_patterns` lists the whole folder again for each of the ~60
    patterns it tries, in each process, for each split loaded. In the block, `datasets` asks
    [`_local_data_patterns`] instead, which applies the same rules (`datasets`' own
    `_get_data_files_patterns`) to one `os.walk` listing; the rest of `load_dataset` is unchanged (the
    chosen patterns, the dataset's fingerprint and its Arrow cache are those it makes without it).

    Measured on the 2-core CPU dev machine, an imagefolder of tiny PNGs whose Arrow cache exists: 20,000
    files load in 12-19 s without the block, 2.3-3.7 s in it; 40,000 in 23 s and 4.5 s (linear: what is
    left is `datasets`' own per-file work on the chosen files, ~0.1 ms each, about 2 min for a million).
    """
    from datasets import load

    original = load.get_data_patterns
    if not hasattr(datasets.data_files, "_get_data_files_patterns"):  # private: a datasets without it
        yield
        return

    def patterns(base_path: str, download_config: Any = None) -> dict[str, list[str]]:
        if "://" in base_path or not Path(base_path).is_dir():
            return original(base_path, download_config=download_config)
        return _local_data_patterns(Path(base_path)) or original(base_path, download_config=download_config)

    load.get_data_patterns = patterns
    try:
        yield
    finally:
        load.get_data_patterns = original


def _local_data_patterns(folder: Path) -> dict[str, list[str]] | None:
    """`datasets.data_files.get_data_patterns(folder)` from one listing of `folder`: each pattern matched
    against it as `fsspec`'s glob matches (`glob_translate`), hidden and special files left out as
    `resolve_pattern` leaves them out; None when no pattern matches (`datasets` then says so)."""
    from datasets import data_files
    from fsspec.utils import glob_translate

    root = folder.resolve().as_posix()
    files = [f"{top}/{name}" for top, _, names in os.walk(root) for name in names]

    def resolve(pattern: str) -> list[str]:
        full = f"{root}/{pattern}"
        matches = re.compile(glob_translate(full)).match
        found = [
            file
            for file in files
            if matches(file)
            and os.path.basename(file) not in data_files.FILES_TO_IGNORE
            and not data_files._is_inside_unrequested_special_dir(file, full)
            and not data_files._is_unrequested_hidden_file_or_is_inside_unrequested_hidden_dir(file, full)
        ]
        if not found:
            raise FileNotFoundError(full)
        return found

    try:
        return data_files._get_data_files_patterns(resolve)
    except FileNotFoundError:
        return None


def load_from_hub(
    dataset_name: str, config_name: str | None, revision: str | None, streaming: bool = False
) -> DatasetDict | datasets.IterableDatasetDict:
    try:
        with offline_unless_reachable():
            return datasets.load_dataset(dataset_name, config_name, revision=revision, streaming=streaming)
    except (OSError, datasets.exceptions.DatasetNotFoundError) as error:  # ConnectionError is an OSError
        raise UsageError(
            f"--dataset_name {dataset_name}: cannot load it from the Hub (offline, or no such dataset). "
            f"Pass a local copy instead: --dataset_name <folder> (parquet files, an imagefolder or a "
            f"save_to_disk folder, e.g. made where the Hub is reachable with "
            f"`datasets.load_dataset({dataset_name!r}).save_to_disk(folder)`)."
        ) from error


def check_shards(folder: Path) -> None:
    """Raise for a folder of WebDataset shards that `datasets` would fail on with an unclear error: an
    empty `.tar` file. (Shards without images are named by [`_find_columns`].)"""
    empty = sorted(file.name for file in folder.glob("*.tar") if not _holds_members(file))
    if empty:
        raise UsageError(
            f"--dataset_name {folder}: WebDataset shard {empty[0]} holds no samples ({len(empty)} empty "
            f".tar files); remove it, or write it again with its members (000.jpg, 000.cls, ...)."
        )


def _holds_members(shard: Path) -> bool:
    """Whether the tar file `shard` holds at least one member (reads its first header only)."""
    try:
        with tarfile.open(shard) as tar:
            return tar.next() is not None
    except tarfile.TarError:  # not a tar file at all: `load_dataset` names it
        return True


class StreamedSplits(Mapping):
    """The splits of `load_dataset(..., streaming=True)`, each read once into a local map-style copy when
    first asked for: batch order and exact resume index rows, which an iterable dataset has not.

    The copy is `Dataset.from_generator`'s, in the `datasets` cache (`HF_DATASETS_CACHE`, by default
    `~/.cache/huggingface/datasets/generator/`), named after the source: the dataset, configuration and
    split, the Hub commit (resolved from `revision` when the Hub answers; offline, the revision as given)
    or, for a local folder, the name, size and time of each of its files. So the next run with the same
    source reuses it, and a changed source is read again. Images stored as local files stay paths (the
    folder is not copied); others are stored as their encoded bytes, never decoded. Rows keep the
    stream's order, shard after shard, as `load_dataset` without streaming orders them.
    """

    def __init__(self, dataset_name: str, config_name: str | None, revision: str | None, path: Path | None):
        self.source = {"name": dataset_name, "config": config_name, "revision": revision}
        if path is None:
            self.streams = load_from_hub(dataset_name, config_name, revision, streaming=True)
            self.source["revision"] = _hub_commit(dataset_name, revision)
        else:
            self.streams = load_local(path, config_name, streaming=True)
            self.source["files"] = _folder_signature(path)
        if isinstance(self.streams, datasets.IterableDataset):
            self.streams = {"train": self.streams}
        self.copies: dict[str, Dataset] = {}

    def __getitem__(self, split: str) -> Dataset:
        if split not in self.copies:
            stream = self.streams[split]  # a KeyError for an unknown split, as a dict gives
            self.copies[split] = Dataset.from_generator(
                _streamed_rows,
                features=stream.features,
                gen_kwargs={"source": {**self.source, "split": split}},
                split=datasets.NamedSplit(split),
            )
        return self.copies[split]

    def __iter__(self) -> Iterator[str]:
        return iter(self.streams)

    def __len__(self) -> int:
        return len(self.streams)


def _streamed_rows(source: dict) -> Iterator[dict]:
    """The rows of one streamed split (`source`: as [`StreamedSplits`] names it), images undecoded."""
    path = local_path(source["name"])
    streams = (
        load_from_hub(source["name"], source["config"], source["revision"], streaming=True)
        if path is None
        else load_local(path, source["config"], streaming=True)
    )
    stream = streams if isinstance(streams, datasets.IterableDataset) else streams[source["split"]]
    images = [
        name for name, feature in (stream.features or {}).items() if isinstance(feature, datasets.Image)
    ]
    for row in stream.decode(False):
        for name in images:
            value = row[name]
            if value is not None and value.get("bytes") is None and not Path(value["path"]).is_file():
                with datasets.utils.file_utils.xopen(value["path"], "rb") as file:  # hf://, https://
                    row[name] = {"bytes": file.read(), "path": value["path"]}
        yield row


def _hub_commit(dataset_name: str, revision: str | None) -> str | None:
    """The commit `revision` (None: the default branch) of a Hub dataset is at, or `revision` offline."""
    from huggingface_hub import HfApi

    try:
        with offline_unless_reachable():
            return HfApi().dataset_info(dataset_name, revision=revision).sha or revision
    except Exception:  # offline, or no such repository: `load_dataset` has said which
        return revision


def _folder_signature(folder: Path) -> str:
    """A hash of the name, size and modification time of every file under `folder` (one `stat` each)."""
    digest = hashlib.sha256()
    for root, directories, files in os.walk(folder):
        directories.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(root, name))
            relative = os.path.relpath(os.path.join(root, name), folder)
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
