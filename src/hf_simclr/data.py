"""Image datasets in one layout: load from the Hub or disk, wrap for DataLoaders, decode to tensors.

Every loader returns a `datasets.Dataset` with an `image` column (feature `datasets.Image`) and,
when the source has labels, a `label` column (a `ClassLabel`, whatever the source held: class names or
numbers; -1 marks an unlabeled row, as in STL-10's `unlabeled` split). The rest of the package reads only
that layout. A dataset is known by its content ([`hf_simclr.identity.dataset_identity`]), not by the folder it
lies in.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import ClassLabel, Dataset

from .arguments import UsageError
from .decoded_cache import cache_folder, fill, fill_rows
from .folder_format import decoded_cache_name
from .identity import dataset_identity
from .image_view import eval_view
from .paths import local_path
from .sources import StreamedSplits, check_shards, load_from_hub, load_local
from .transforms import ImageBatchTransform, ImageDecodeError, decode_image

IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"
# Names the image and label columns go by on the Hub (uoft-cs/cifar10: img; stl10 copies: image;
# cifar100: fine_label), tried in this order before falling back on the column's feature type.
IMAGE_COLUMN_NAMES = ("img", "image")
# WebDataset shards (`000.png` + `000.cls`) give columns named after the members' extensions: the image's
# is found by its type, the label's is `cls`.
LABEL_COLUMN_NAMES = ("label", "labels", "fine_label", "cls")
DECODE_CHUNK_ROWS = 1000
# The version of how a row is decoded ([`decode_images`]: `image_view.eval_view` of the upright RGB image), in
# every decoded cache's name: a change of the pixels a row decodes to is a new version, and no run reads a
# cache of the old one.
DECODER_VERSION = 1


def load_image_dataset(
    dataset_name: str,
    dataset_config_name: str | None = None,
    split: str = "train",
    image_column: str | None = None,
    label_column: str | None = None,
    max_samples: int | None = None,
    revision: str | None = None,
    seed: int = 0,
    require_labels: bool = False,
    split_flag: str = "split",
    streaming: bool = False,
) -> Dataset:
    """Load one split of an image dataset, with its columns renamed to `image` and `label`.

    Args:
        dataset_name (`str`): a Hub dataset (`uoft-cs/cifar10`, `jxie/stl10`), or a local directory:
            parquet files or a dataset repository (README configs), a folder of images (imagefolder
            layout, class sub-folders), a folder of WebDataset `.tar` shards (`000.jpg` + `000.cls`
            members), or a `save_to_disk` folder (Dataset or DatasetDict). Nothing is read into memory
            whole: `datasets` memory-maps its Arrow files, and images are read a chunk of rows at a time.
        dataset_config_name (`str`, *optional*): the dataset's configuration name, if it has several.
        split (`str`, defaults to `"train"`): a split, or several joined by `+` (`"train+unlabeled"`),
            concatenated in that order.
        image_column (`str`, *optional*): the image column; found automatically when None (`img`,
            `image`, or the only column of feature type `Image`).
        label_column (`str`, *optional*): the label column; found automatically when None (`label`,
            `labels`, `fine_label`, or the only `ClassLabel` column); none is fine unless `require_labels`.
            A column of class names (`"cat"`) or integers becomes a `ClassLabel` ([`encode_labels`]), with
            the same classes in every split.
        max_samples (`int`, *optional*): keep a random subset of this many rows (seeded by `seed`).
        revision (`str`, *optional*): the Hub revision (branch, tag or commit) to pin.
        seed (`int`, defaults to 0): seed of the `max_samples` subset.
        require_labels (`bool`, defaults to False): fail unless every row has a label (for probes).
        split_flag (`str`, defaults to `"split"`): the caller's flag for `split` (`train_split`,
            `eval_split`), which the messages name.
        streaming (`bool`, defaults to False): load with `streaming=True` and read each split used once
            into a local map-style copy ([`StreamedSplits`]), which the next run reuses: the same rows in
            the same order as without streaming, so the batch order, exact resume, the `max_samples`
            subset and [`dataset_identity`] (the decoded cache) are the same.

    Returns:
        `datasets.Dataset` with columns `image` and, if found, `label`.

    Raises:
        UsageError: for a dataset that cannot be loaded, an unknown or empty split, a missing image
            column or (with `require_labels`) missing labels; the message names the flag and what to pass.
    """
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples={max_samples} must be at least 1, or None for the whole split.")
    splits = _load_splits(dataset_name, dataset_config_name, revision, streaming)
    dataset = _select_split(splits, split, dataset_name, split_flag)
    source_columns = dataset.column_names
    image, label = _find_columns(dataset, image_column, label_column)
    dataset = _standardize_columns(dataset, image, label, splits)
    if require_labels:
        _check_labels(dataset, dataset_name, f"--{split_flag} {split}", label, source_columns)
    if max_samples is not None and max_samples < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_samples))
    return dataset


def _load_splits(
    dataset_name: str, config_name: str | None, revision: str | None, streaming: bool = False
) -> Mapping[str, Dataset]:
    """All splits of a Hub dataset or local directory, by name (streamed ones read when first used)."""
    path = local_path(dataset_name)
    if path is not None and not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "no such directory"
        raise UsageError(
            f"--dataset_name {dataset_name}: {what}; pass an existing folder (or a Hub dataset id)."
        )
    if path is not None:
        check_shards(path)
    if streaming:
        return StreamedSplits(dataset_name, config_name, revision, path)
    loaded = (
        load_from_hub(dataset_name, config_name, revision) if path is None else load_local(path, config_name)
    )
    if isinstance(loaded, Dataset):
        # A saved single split: it answers to its own split name, or to "train" when it has none.
        return {str(loaded.split) if loaded.split is not None else "train": loaded}
    return dict(loaded)


def _select_split(splits: Mapping[str, Dataset], split: str, dataset_name: str, split_flag: str) -> Dataset:
    """The split named `split`, or the concatenation of the `+`-joined splits it names."""
    names = [name.strip() for name in split.split("+")]
    unknown = [name for name in names if name not in splits]
    if unknown:
        raise UsageError(
            f"--{split_flag} {split}: {dataset_name!r} has no split {unknown[0]!r}; its splits are "
            f"{sorted(splits)}."
        )
    parts = [splits[name] for name in names]
    # The joined splits keep their name, by which a message names a row ([`row_description`]).
    dataset = (
        parts[0]
        if len(parts) == 1
        else datasets.concatenate_datasets(parts, split=datasets.NamedSplit(split))
    )
    if len(dataset) == 0:
        non_empty = sorted(name for name, part in splits.items() if len(part) > 0)
        raise UsageError(
            f"--{split_flag} {split} of {dataset_name!r} is empty; non-empty splits: {non_empty}."
        )
    return dataset


def _find_column(
    dataset: Dataset, requested: str | None, names: tuple[str, ...], feature_type: type
) -> str | None:
    """`requested` if given, else the first of `names` present, else the only column of `feature_type`."""
    if requested is not None:
        return requested
    for name in names:
        if name in dataset.column_names:
            return name
    typed = [name for name, feature in dataset.features.items() if isinstance(feature, feature_type)]
    return typed[0] if len(typed) == 1 else None


def _find_columns(
    dataset: Dataset, image_column: str | None, label_column: str | None
) -> tuple[str, str | None]:
    """The image column and the label column (None: no labels) of `dataset`, by the user's names."""
    columns = {name: str(feature) for name, feature in dataset.features.items()}
    image = _find_column(dataset, image_column, IMAGE_COLUMN_NAMES, datasets.Image)
    if (
        image is None
        and "__key__" in columns
        and not any(isinstance(feature, datasets.Image) for feature in dataset.features.values())
    ):
        members = ", ".join(f"000.{name}" for name in columns if not name.startswith("__"))
        raise UsageError(
            f"the WebDataset shards hold no images: their samples have only {members or 'no'} members; "
            f"write each sample's image into the shard beside them (000.jpg or 000.png, ...)."
        )
    if image is None:
        raise UsageError(f"no image column found among {columns}; pass --image_column.")
    for flag, name in (("--image_column", image), ("--label_column", label_column)):
        if name is not None and name not in columns:
            raise UsageError(f"{flag} {name} not in {sorted(columns)}.")
    if not isinstance(dataset.features[image], datasets.Image):
        raise UsageError(f"--image_column {image} holds {columns[image]}, not images; columns: {columns}.")
    return image, _find_column(dataset, label_column, LABEL_COLUMN_NAMES, ClassLabel)


def _standardize_columns(
    dataset: Dataset, image: str, label: str | None, splits: Mapping[str, Dataset]
) -> Dataset:
    """Keep the image and label columns only, the labels encoded across `splits`, renamed `image`, `label`.

    The other splits are read only when the labels need encoding (a `ClassLabel` is kept): a streamed
    source's other splits are then not copied."""
    kept = [image] if label is None else [image, label]
    dataset = dataset.select_columns(kept)
    if label is not None and not isinstance(dataset.features[label], ClassLabel):
        dataset = encode_labels(
            dataset, label, [part for part in splits.values() if label in part.column_names]
        )
    renames = {
        old: new
        for old, new in zip(kept, (IMAGE_COLUMN, LABEL_COLUMN)[: len(kept)], strict=True)
        if old != new
    }
    return dataset.rename_columns(renames) if renames else dataset


def encode_labels(dataset: Dataset, column: str, splits: list[Dataset] | None = None) -> Dataset:
    """`column` as a `ClassLabel`, encoded as `datasets`' `class_encode_column` does, across all `splits`.

    A `ClassLabel` column is kept as it is. A column of strings (`"cat"`, `"automobile"`) or booleans gets
    the sorted distinct values of all `splits` as class names, as `class_encode_column` names them; a
    column of integers gets them in numeric order (so labels 0 .. C-1 keep their numbers, and gaps close:
    `3, 7` become `0, 1` named `"3"`, `"7"`). Empty values, and -1 in an integer column, stay unlabeled
    (-1, as in STL-10's `unlabeled` split). The classes come from every split, so the same class has the
    same number in the training and the evaluation split even when one of them lacks a class.

    Unlike `class_encode_column`, no `map` rewrites the dataset (which would copy every image into a
    cache file, next to a `save_to_disk` folder too): the one new column is computed with Arrow.

    Args:
        dataset (`datasets.Dataset`): rows with `column`.
        column (`str`): the label column, by the user's name (named in the error).
        splits (`list[datasets.Dataset]`, *optional*): every split of the source holding `column`, whose
            values make the classes; defaults to `[dataset]`.

    Returns:
        `datasets.Dataset` with `column` a `ClassLabel` (int64 codes, -1 unlabeled), the other columns kept.

    Raises:
        UsageError: if `column` holds neither integers, strings, booleans nor a `ClassLabel`.
    """
    feature = dataset.features[column]
    if isinstance(feature, ClassLabel):
        return dataset
    kind = feature.pa_type if isinstance(feature, datasets.Value) else None
    integers = kind is not None and pa.types.is_integer(kind)
    if kind is None or not (
        integers or pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind)
    ):
        raise UsageError(
            f"--label_column {column} holds {feature}, not class labels; pass a column of class names "
            f"(strings) or class numbers (integers)."
        )
    values = set()
    for part in splits if splits is not None else [dataset]:
        values.update(part.unique(column))
    classes = sorted(value for value in values if value is not None and not (integers and value == -1))
    labels = dataset.with_format("arrow")[column]
    codes = pc.fill_null(pc.index_in(labels, value_set=pa.array(classes, type=labels.type)), -1)
    names = ClassLabel(names=[str(value) for value in classes])
    encoded = dataset.remove_columns([column])
    return encoded.add_column(column, codes.to_numpy().astype(np.int64), feature=names)


def _check_labels(
    dataset: Dataset, dataset_name: str, split: str, source_label: str | None, source_columns: list[str]
) -> None:
    """Raise unless every row has a label (not -1, not None): a probe cannot use unlabeled rows.

    The message names the split by its flag (`split`: `--train_split train`), the user's columns, and, for
    an imagefolder without labels, what its layout lacks.
    """
    if LABEL_COLUMN not in dataset.column_names:
        path = local_path(dataset_name)
        layout = _imagefolder_layout(path) if path is not None and path.is_dir() else None
        raise UsageError(
            f"{split} of {dataset_name} has no labels: {layout}"
            if layout
            else f"{split} has no label column (the columns of {dataset_name}: {source_columns}); labels are "
            f"needed here: pass --label_column <the column of class names or numbers> or a labeled dataset."
        )
    labels = dataset.select_columns([LABEL_COLUMN]).to_pandas()[LABEL_COLUMN]
    missing = int((labels.isna() | (labels == -1)).sum())
    if missing:
        raise UsageError(
            f"{missing} of {len(labels)} rows of {split} have no label (-1 or empty in column {source_label!r}); "
            f"labels are needed here: choose a labeled split (e.g. 'train', not 'unlabeled')."
        )


def _imagefolder_layout(folder: Path) -> str | None:
    """Why `datasets`' imagefolder gave the images of `folder` no labels, and how to lay them out; None
    when `folder` holds no image files (not an imagefolder) or none of the imagefolder's rules explains it."""
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    files = sorted(
        file.relative_to(folder)
        for file in folder.rglob("*")
        if file.suffix.lower() in ImageFolder.EXTENSIONS and file.is_file()
    )
    metadata = [file.name for file in folder.rglob("*") if file.name in ImageFolder.METADATA_FILENAMES]
    if not files:
        return None
    rule = (
        "datasets' imagefolder names each image's class after the folder it is in only when every image "
        "lies at the same depth below the dataset folder, in two or more folders, and no metadata file is "
        "there"
    )
    layout = "Lay it out as <class>/<image> (or <split>/<class>/<image>, e.g. train/cat/1.jpg)"
    if metadata:
        return (
            f"{rule}; this folder has {metadata[0]}, whose columns replace the folder labels: pass "
            f"--label_column <its column of class names>, or remove it. {layout}."
        )
    depths = {len(file.parts) for file in files}
    if len(depths) > 1:
        shallow = next(file for file in files if len(file.parts) == min(depths))
        deep = next(file for file in files if len(file.parts) == max(depths))
        return (
            f"{rule}, and here images lie at different depths ({shallow} and {deep}). {layout}: move the "
            f"images of sub-folders such as {deep.parent} up into their class folder (or make each "
            f"sub-folder a class folder of its own)."
        )
    parents = {file.parent for file in files}
    if len(parents) == 1:
        where = f"folder {files[0].parent}" if files[0].parent != Path(".") else "dataset folder itself"
        return f"{rule}, and all {len(files)} images are in the {where}. {layout}."
    return None


def class_names(dataset: Dataset) -> list[str] | None:
    """The class names of the `label` column when it is a `ClassLabel`, else None."""
    feature = dataset.features.get(LABEL_COLUMN)
    return list(feature.names) if isinstance(feature, ClassLabel) else None


def label_names(dataset: Dataset, *labels: torch.Tensor) -> list[str]:
    """[`class_names`], or, without a `ClassLabel`, the numbers 0 .. the largest of `labels` as text."""
    return class_names(dataset) or [str(label) for label in range(int(max(y.max() for y in labels)) + 1)]


class ImageViewDataset(torch.utils.data.Dataset):
    """A `datasets.Dataset` read row by row through a batch transform, for `torch.utils.data.DataLoader`.

    Unlike `with_transform`, it knows which rows it reads, so an undecodable image is reported with
    its row index. It decodes images itself (the column is cast to `Image(decode=False)`), draws
    fresh views on every access, and pickles into spawned DataLoader workers. `__getitems__` lets a
    DataLoader read a whole batch of rows in one `datasets` query.

    Args:
        dataset (`datasets.Dataset`): rows with the transform's image (and label) column.
        transform (`ImageBatchTransform`): e.g. `two_view_batch_transform(config, label_column=None)`.

    Items are dicts `{"pixel_values": tensor, "label": int}` ("label" when the transform keeps it);
    the default collate stacks them into (B, 2, 3, S, S) or (B, 3, S, S) and (B,).
    """

    def __init__(self, dataset: Dataset, transform: ImageBatchTransform) -> None:
        column = transform.image_column
        if column not in dataset.column_names:
            raise ValueError(f"the transform's image column {column!r} not in {dataset.column_names}.")
        self.dataset = dataset.with_format(None).cast_column(column, datasets.Image(decode=False))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        try:
            batch = self.transform(self.dataset[list(indices)])
        except ImageDecodeError as error:
            row = row_description(self.dataset, indices[error.position])
            raise UsageError(
                f"{row}: cannot decode image ({error.reason}); remove or fix that row."
            ) from error
        return [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]


def decode_images(
    dataset: Dataset,
    image_size: int,
    cache_file: str | Path | None = None,
    *,
    num_workers: int | None = None,
    all_processes: bool = True,
) -> torch.Tensor:
    """Decode a whole split once, on every core and every process, for augmentation on the GPU.

    Each image becomes its evaluation view ([`hf_simclr.image_view.eval_view`]: RGB, shorter side
    resized to `image_size`, center crop), the same pixels the saved image processor gives, whatever the
    number of worker processes and processes: each writes its rows ([`hf_simclr.decoded_cache.fill`]).

    Args:
        dataset (`datasets.Dataset`): rows with an `image` column (see `load_image_dataset`).
        image_size (`int`): side S of the stored images, in pixels.
        cache_file (`str` or `Path`, *optional*): a `.npy` file. When it exists with shape (N, 3, S, S) it is
            memory-mapped instead of decoding; otherwise the run's processes decode their shares into it
            (a temporary file renamed into place when all are written). Only the shape is checked:
            [`decoded_cache_file`] names the file after the dataset's content and size.
        num_workers (`int`, *optional*): worker processes decoding in this process
            (`--preprocessing_num_workers`); None: [`hf_simclr.decoded_cache.worker_count`]'s default.
        all_processes (`bool`, defaults to True): every process of the run makes this call and they share
            the work; False: this process decodes alone.

    Returns:
        `torch.Tensor` of dtype uint8 and shape (N, 3, S, S). A cached tensor is a copy-on-write
        memory map: writing to it changes memory only, never the file.

    Raises:
        UsageError: if an image cannot be decoded (the message names its row), in any process's share.
    """
    shape = (len(dataset), 3, image_size, image_size)

    def decode(out: np.ndarray, rows: range, workers: int) -> None:
        _decode_into(dataset, out, rows, workers)

    return torch.from_numpy(fill(shape, decode, cache_file, num_workers, all_processes, DECODE_CHUNK_ROWS))


def decoded_cache_file(cache_dir: str | Path | None, dataset: Dataset, image_size: int) -> Path | None:
    """The `.npy` file of [`decode_images`] for `dataset` at `image_size`, inside `cache_dir` (None: no cache).

    Named after the dataset's content ([`dataset_identity`]: its rows' images and labels, in order, so the
    split and the seeded subset) and the view size, so that pretraining, the kNN monitor and the
    evaluation share one decoded copy of a split, a copy of the data in another folder finds it, and two
    different splits never share a file.
    """
    if cache_dir is None:
        return None
    name = decoded_cache_name(dataset_identity(dataset), len(dataset), image_size, DECODER_VERSION)
    return Path(cache_dir) / name


def host_split_cache_file(
    cache_dir: str | Path | None, dataset: Dataset, image_size: int, all_processes: bool = True
) -> Path | None:
    """The cache file of a split decoded whole on the host, for the kNN monitor and the evaluation: in
    `cache_dir` (`--decoded_cache_dir`) when given; without it, None (decoded into memory) while the split fits
    the host's memory, and a file of the datasets cache beyond that, memory-mapped and read in batches
    ([`hf_simclr.decoded_cache.cache_folder`]): host memory stays bounded whatever the split's size.
    `all_processes` as [`decode_images`] takes it."""
    folder = cache_folder(cache_dir, len(dataset) * 3 * image_size**2, all_processes)
    return decoded_cache_file(folder, dataset, image_size)


def row_description(dataset: Dataset, index: int) -> str:
    """Row `index` of `dataset` in the user's terms: its row in their split (before any subset or shuffle)
    and, when the image is stored as a file, that file: `row 4013 of split 'train' (file cat/7.jpg)`."""
    row = int(dataset._indices.column(0)[index].as_py()) if dataset._indices is not None else index
    split = str(dataset.split) if dataset.split is not None else None
    names = split.split("+") if split is not None else []
    sizes = dataset.info.splits or {}
    if len(names) > 1 and all(name in sizes for name in names):
        for name in names:  # a row of joined splits (train+unlabeled): the split it came from
            if row < sizes[name].num_examples:
                split = name
                break
            row -= sizes[name].num_examples
    where = f"row {row} of split {split!r}" if split is not None else f"row {row} of the dataset"
    value = dataset.with_format("arrow")[index : index + 1]
    images = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Image)]
    stored = value.column(images[0])[0].as_py() if images else None
    path = stored.get("path") if stored else None
    return f"{where} (file {path})" if path else where


def _decode_into(dataset: Dataset, out: np.ndarray, rows: range, num_workers: int = 1) -> None:
    """Fill `out[rows]` (`out`: (N, 3, S, S) uint8) with the dataset's images, in `num_workers` processes,
    reading chunks of at most `DECODE_CHUNK_ROWS` encoded images."""
    raw = dataset.select_columns([IMAGE_COLUMN]).cast_column(IMAGE_COLUMN, datasets.Image(decode=False))
    what = f"Decoding {len(rows)} images to {out.shape[-1]} px"
    fill_rows(functools.partial(_decode_chunk, dataset, raw), out, rows, num_workers, DECODE_CHUNK_ROWS, what)


def _decode_chunk(dataset: Dataset, raw: Dataset, out: np.ndarray, start: int, stop: int) -> int:
    """Decode rows [start, stop) of `raw` (encoded bytes) into `out`; returns how many."""
    for offset, value in enumerate(raw[start:stop][IMAGE_COLUMN]):
        try:
            image = decode_image(value)
        except ValueError as error:
            row = row_description(dataset, start + offset)
            raise UsageError(f"{row}: cannot decode image ({error}); remove or fix that row.") from error
        out[start + offset] = eval_view(image, out.shape[-1])
    return stop - start


def decode_labels(dataset: Dataset) -> torch.Tensor | None:
    """The `label` column as an int64 tensor of shape (N,) (-1 for unlabeled rows), or None without one."""
    if LABEL_COLUMN not in dataset.column_names:
        return None
    labels = dataset.select_columns([LABEL_COLUMN]).to_pandas()[LABEL_COLUMN]
    return torch.tensor(labels.fillna(-1).to_numpy(dtype=np.int64))
