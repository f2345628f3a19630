"""A dataset known by its content ([`dataset_identity`]), not by the path it was loaded from.

The identity names the decoded cache, the feature cache's key and the resume setting `dataset_identity`, so a
copy of the data staged in another folder finds its caches and resumes, and changed data never does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset

# Rows read from the Arrow table at a time while hashing.
ROWS_PER_READ = 1000


def dataset_identity(dataset: Dataset) -> str:
    """What the data is, by its content: the same for a byte-identical copy in another folder.

    A hash (SHA-256, 16 hex digits) of the columns and their features (a `ClassLabel`'s names) and of every
    row in the dataset's order: each image's encoded bytes (the file's bytes for an image stored as a path,
    as an imagefolder stores them, so the folder it lies in does not count) and each other value (the
    label). The rows are those the dataset holds, so the split, the seeded `max_samples` subset and its
    order are part of it; a changed image, label or row count changes it. `datasets`' `_fingerprint`
    differs for it: that one hashes where the files are, and the Hub revision when there is one.

    Cost: it reads every selected image's bytes once. The whole CIFAR-10 copy (60,000 PNGs in parquet,
    train+test of `/work/shared/datasets/cifar10`) takes 0.09 s on the 2-core CPU dev machine, a 1,024-row
    subset 0.008 s, against about 6 s to decode the 60,000 images at 32 px (1.0 s per 10,000). An
    imagefolder costs one read of each of its files (the OS then has them cached for the decoding); a
    dataset of hundreds of GB costs that read at disk speed each time, which is why the bytes are hashed
    as they are stored, never decoded.

    Args:
        dataset (`datasets.Dataset`): any dataset; images are found by their `datasets.Image` feature.

    Returns:
        `str` of 16 hex digits. Computed once per dataset state in a process (the resume check, the disk
        space check and the decoded cache all ask for the training split's).
    """
    known = _IDENTITIES.get(dataset._fingerprint)
    if known is None:
        known = _IDENTITIES[dataset._fingerprint] = _content_identity(dataset)
    return known


# `dataset_identity` by `datasets` fingerprint, which changes with every selection, shuffle or cast.
_IDENTITIES: dict[str, str] = {}


def _content_identity(dataset: Dataset) -> str:
    """[`dataset_identity`] computed: one pass over the stored bytes."""
    images = {name for name, feature in dataset.features.items() if isinstance(feature, datasets.Image)}
    features = {name: _feature_identity(feature) for name, feature in dataset.features.items()}
    digest = hashlib.sha256(json.dumps({"rows": len(dataset), "features": features}, sort_keys=True).encode())
    rows = dataset.with_format("arrow")
    for start in range(0, len(dataset), ROWS_PER_READ):
        chunk = rows[start : start + ROWS_PER_READ]
        for name in dataset.column_names:
            column = chunk.column(name).combine_chunks()
            if name in images:
                for value in column.to_pylist():
                    _hash_image(digest, value)
            else:
                digest.update(json.dumps(column.to_pylist(), default=repr).encode())
    return digest.hexdigest()[:16]


def _feature_identity(feature: object) -> str:
    """A feature as the identity counts it: `Image` whatever its `decode` setting, others as `datasets` writes them."""
    return "Image" if isinstance(feature, datasets.Image) else repr(feature)


def _hash_image(digest: Any, value: dict | None) -> None:
    """Add one stored image (`{"bytes", "path"}`) to `digest`: its bytes, or its file's bytes."""
    data = None
    if value is not None and value.get("bytes") is not None:
        data = value["bytes"]
    elif value is not None and value.get("path") and Path(value["path"]).is_file():
        data = Path(value["path"]).read_bytes()
    elif value is not None and value.get("path"):
        data = f"path:{value['path']}".encode()  # a remote file (hf://...): its address, revision included
    data = data if data is not None else b""
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)
