"""Image datasets in one layout: load from the Hub or disk, wrap for DataLoaders, decode to tensors.

Every loader returns a `datasets.Dataset` with an `image` column (feature `datasets.Image`) and,
when the source has labels, a `label` column (-1 marks an unlabeled row, as in STL-10's `unlabeled`
split). The rest of the package reads only that layout.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict

from .arguments import UsageError, local_path
from .folder_format import DATASET_FILES, decoded_cache_name, write_atomically
from .image_view import eval_view
from .transforms import ImageBatchTransform, ImageDecodeError, decode_image

IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"
# Names the image and label columns go by on the Hub (uoft-cs/cifar10: img; stl10 copies: image;
# cifar100: fine_label), tried in this order before falling back on the column's feature type.
IMAGE_COLUMN_NAMES = ("img", "image")
LABEL_COLUMN_NAMES = ("label", "labels", "fine_label")
DECODE_CHUNK_ROWS = 1000


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
) -> Dataset:
    """Load one split of an image dataset, with its columns renamed to `image` and `label`.

    Args:
        dataset_name (`str`): a Hub dataset (`uoft-cs/cifar10`, `jxie/stl10`), or a local directory:
            parquet files or a dataset repository (README configs), a folder of images (imagefolder
            layout, class sub-folders), or a `save_to_disk` folder (Dataset or DatasetDict).
        dataset_config_name (`str`, *optional*): the dataset's configuration name, if it has several.
        split (`str`, defaults to `"train"`): a split, or several joined by `+` (`"train+unlabeled"`),
            concatenated in that order.
        image_column (`str`, *optional*): the image column; found automatically when None (`img`,
            `image`, or the only column of feature type `Image`).
        label_column (`str`, *optional*): the label column; found automatically when None (`label`,
            `labels`, `fine_label`, or the only `ClassLabel` column); none is fine unless `require_labels`.
        max_samples (`int`, *optional*): keep a random subset of this many rows (seeded by `seed`).
        revision (`str`, *optional*): the Hub revision (branch, tag or commit) to pin.
        seed (`int`, defaults to 0): seed of the `max_samples` subset.
        require_labels (`bool`, defaults to False): fail unless every row has a label (for probes).
        split_flag (`str`, defaults to `"split"`): the caller's flag for `split` (`train_split`,
            `eval_split`), which the messages name.

    Returns:
        `datasets.Dataset` with columns `image` and, if found, `label`.

    Raises:
        UsageError: for a dataset that cannot be loaded, an unknown or empty split, a missing image
            column or (with `require_labels`) missing labels; the message names the flag and what to pass.
    """
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples={max_samples} must be at least 1, or None for the whole split.")
    splits = _load_splits(dataset_name, dataset_config_name, revision)
    dataset = _select_split(splits, split, dataset_name, split_flag)
    dataset = _standardize_columns(dataset, image_column, label_column)
    if require_labels:
        _check_labels(dataset, split, split_flag)
    if max_samples is not None and max_samples < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_samples))
    return dataset


def _load_splits(dataset_name: str, config_name: str | None, revision: str | None) -> dict[str, Dataset]:
    """All splits of a Hub dataset or local directory, by name."""
    path = local_path(dataset_name)
    if path is None:
        loaded = _load_from_hub(dataset_name, config_name, revision)
    elif path.is_dir():
        loaded = _load_local(path, config_name)
    else:
        what = "is a file, not a folder" if path.exists() else "no such directory"
        raise UsageError(
            f"--dataset_name {dataset_name}: {what}; pass an existing folder (or a Hub dataset id)."
        )
    if isinstance(loaded, Dataset):
        # A saved single split: it answers to its own split name, or to "train" when it has none.
        return {str(loaded.split) if loaded.split is not None else "train": loaded}
    return dict(loaded)


def _load_local(path: Path, config_name: str | None) -> Dataset | DatasetDict:
    """A `save_to_disk` folder, or parquet files / an imagefolder through `load_dataset`."""
    try:
        if any((path / name).is_file() for name in DATASET_FILES):
            return datasets.load_from_disk(str(path))
        return datasets.load_dataset(str(path), config_name)
    except (OSError, ValueError, datasets.exceptions.DatasetGenerationError) as error:
        raise UsageError(
            f"--dataset_name {path}: cannot read the dataset in this folder ({type(error).__name__}: {error}). "
            f"Pass a folder of parquet files, an imagefolder (class sub-folders of images) or a save_to_disk "
            f"folder, and check that its files are complete."
        ) from error


def _load_from_hub(dataset_name: str, config_name: str | None, revision: str | None) -> DatasetDict:
    try:
        return datasets.load_dataset(dataset_name, config_name, revision=revision)
    except (OSError, datasets.exceptions.DatasetNotFoundError) as error:  # ConnectionError is an OSError
        raise UsageError(
            f"--dataset_name {dataset_name}: cannot load it from the Hub (offline, or no such dataset). "
            f"Pass a local copy instead: --dataset_name <folder> (parquet files, an imagefolder or a "
            f"save_to_disk folder, e.g. made where the Hub is reachable with "
            f"`datasets.load_dataset({dataset_name!r}).save_to_disk(folder)`)."
        ) from error


def _select_split(splits: dict[str, Dataset], split: str, dataset_name: str, split_flag: str) -> Dataset:
    """The split named `split`, or the concatenation of the `+`-joined splits it names."""
    names = [name.strip() for name in split.split("+")]
    unknown = [name for name in names if name not in splits]
    if unknown:
        raise UsageError(
            f"--{split_flag} {split}: {dataset_name!r} has no split {unknown[0]!r}; its splits are "
            f"{sorted(splits)}."
        )
    parts = [splits[name] for name in names]
    dataset = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
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


def _standardize_columns(dataset: Dataset, image_column: str | None, label_column: str | None) -> Dataset:
    """Keep the image and label columns only, renamed to `image` and `label`."""
    columns = {name: str(feature) for name, feature in dataset.features.items()}
    image = _find_column(dataset, image_column, IMAGE_COLUMN_NAMES, datasets.Image)
    if image is None:
        raise UsageError(f"no image column found among {columns}; pass --image_column.")
    for flag, name in (("--image_column", image), ("--label_column", label_column)):
        if name is not None and name not in columns:
            raise UsageError(f"{flag} {name} not in {sorted(columns)}.")
    if not isinstance(dataset.features[image], datasets.Image):
        raise UsageError(f"--image_column {image} holds {columns[image]}, not images; columns: {columns}.")
    label = _find_column(dataset, label_column, LABEL_COLUMN_NAMES, ClassLabel)
    kept = [image] if label is None else [image, label]
    dataset = dataset.select_columns(kept)
    renames = {
        old: new
        for old, new in zip(kept, (IMAGE_COLUMN, LABEL_COLUMN)[: len(kept)], strict=True)
        if old != new
    }
    return dataset.rename_columns(renames) if renames else dataset


def _check_labels(dataset: Dataset, split: str, split_flag: str) -> None:
    """Raise unless every row has a label (not -1, not None): a probe cannot use unlabeled rows."""
    if LABEL_COLUMN not in dataset.column_names:
        raise UsageError(
            f"--{split_flag} {split} has no label column (columns: {dataset.column_names}); labels are needed "
            f"here: pass --label_column or a labeled dataset."
        )
    labels = dataset.select_columns([LABEL_COLUMN]).to_pandas()[LABEL_COLUMN]
    missing = int((labels.isna() | (labels == -1)).sum())
    if missing:
        raise UsageError(
            f"{missing} of {len(labels)} rows of --{split_flag} {split} have no label (-1); labels are needed "
            f"here: choose a labeled split (e.g. 'train', not 'unlabeled')."
        )


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
            raise UsageError(
                f"row {indices[error.position]} of the dataset: cannot decode image ({error.reason}); "
                f"remove or fix that row."
            ) from error
        return [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]


def decode_images(dataset: Dataset, image_size: int, cache_file: str | Path | None = None) -> torch.Tensor:
    """Decode a whole split once, for augmentation on the GPU.

    Each image becomes its evaluation view ([`hf_simclr.image_view.eval_view`]: RGB, shorter side
    resized to `image_size`, center crop), the same pixels the saved image processor gives.

    Args:
        dataset (`datasets.Dataset`): rows with an `image` column (see `load_image_dataset`).
        image_size (`int`): side S of the stored images, in pixels.
        cache_file (`str` or `Path`, *optional*): a `.npy` file. When it exists with shape (N, 3, S, S)
            it is memory-mapped instead of decoding; otherwise the images are decoded into it (written
            to a temporary file in the same folder, then renamed, so a reader never sees half a file).
            Only the shape is checked: [`decoded_cache_file`] names the file after the dataset and size.

    Returns:
        `torch.Tensor` of dtype uint8 and shape (N, 3, S, S). A cached tensor is a copy-on-write
        memory map: writing to it changes memory only, never the file.

    Raises:
        ValueError: if an image cannot be decoded (the message names its row).
    """
    shape = (len(dataset), 3, image_size, image_size)
    if cache_file is None:
        array = np.empty(shape, dtype=np.uint8)
        _decode_into(dataset, array)
        return torch.from_numpy(array)
    cache_file = Path(cache_file)
    if cache_file.is_file():
        try:
            cached = np.load(cache_file, mmap_mode="c")
        except (OSError, ValueError):  # not a complete .npy (e.g. a damaged disk): decode it again
            cached = None
        if cached is not None and cached.shape == shape and cached.dtype == np.uint8:
            return torch.from_numpy(cached)
    _write_cache(dataset, cache_file, shape)
    return torch.from_numpy(np.load(cache_file, mmap_mode="c"))


def decoded_cache_file(cache_dir: str | Path | None, dataset: Dataset, image_size: int) -> Path | None:
    """The `.npy` file of [`decode_images`] for `dataset` at `image_size`, inside `cache_dir` (None: no cache).

    Named after the dataset's `datasets` fingerprint (which changes with the source files, the split,
    the seeded subset and the column selection) and the view size, so that pretraining, the kNN monitor
    and the evaluation share one decoded copy of a split, and two different splits never share a file.
    """
    if cache_dir is None:
        return None
    return Path(cache_dir) / decoded_cache_name(dataset._fingerprint, len(dataset), image_size)


def _write_cache(dataset: Dataset, cache_file: Path, shape: tuple[int, ...]) -> None:
    """Decode into a temporary .npy beside `cache_file`, then rename it into place (atomic)."""

    def decode(temporary: Path) -> None:
        array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=shape)
        _decode_into(dataset, array)
        array.flush()
        del array

    write_atomically(cache_file, decode)


def _decode_into(dataset: Dataset, out: np.ndarray) -> None:
    """Fill `out` (N, 3, S, S) uint8 with the dataset's images, reading chunks of encoded bytes."""
    image_size = out.shape[-1]
    raw = dataset.select_columns([IMAGE_COLUMN]).cast_column(IMAGE_COLUMN, datasets.Image(decode=False))
    for start in range(0, len(raw), DECODE_CHUNK_ROWS):
        values = raw[start : start + DECODE_CHUNK_ROWS][IMAGE_COLUMN]
        for offset, value in enumerate(values):
            try:
                image = decode_image(value)
            except ValueError as error:
                raise UsageError(
                    f"row {start + offset} of the dataset: cannot decode image ({error}); remove or fix that row."
                ) from error
            out[start + offset] = eval_view(image, image_size)


def decode_labels(dataset: Dataset) -> torch.Tensor | None:
    """The `label` column as an int64 tensor of shape (N,) (-1 for unlabeled rows), or None without one."""
    if LABEL_COLUMN not in dataset.column_names:
        return None
    labels = dataset.select_columns([LABEL_COLUMN]).to_pandas()[LABEL_COLUMN]
    return torch.tensor(labels.fillna(-1).to_numpy(dtype=np.int64))
