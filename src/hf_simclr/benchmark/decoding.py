"""Decoding images per second against `--preprocessing_num_workers` (`hf_simclr.data.decode_images`).

Each case decodes a split into a fresh decoded cache (the path pretraining takes with `--decoded_cache_dir`:
the temporary file allocated, the rows written by the workers, the rename), timed from the first image to
the file in place; the dataset's identity (which names the file) is computed before the clock starts. The
cases: CIFAR-10 images (32 x 32 JPEGs of the local copy) to 32 px, and photo-sized JPEGs (500 x 375,
quality 90: CIFAR-10 images upscaled, with noise so that they compress like photos) to 96 and 224 px.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from ..data import decode_images, decoded_cache_file, load_image_dataset

PHOTO_SIZE = (500, 375)


def benchmark_decoding(
    dataset_name: str, split: str, worker_counts: list[int], cifar_samples: int, photo_samples: int
) -> dict:
    """Images per second of each case at each worker count; returns the rows of the report."""
    cifar = load_image_dataset(dataset_name, split=split, max_samples=cifar_samples)
    photos = photo_dataset(cifar.select(range(min(photo_samples, len(cifar)))))
    cases = (
        ("cifar10 to 32 px", cifar, 32),
        ("photos to 96 px", photos, 96),
        ("photos to 224 px", photos, 224),
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for case, dataset, image_size in cases:
            for workers in worker_counts:
                cache = decoded_cache_file(Path(scratch) / f"{image_size}-{workers}", dataset, image_size)
                started = time.perf_counter()
                decode_images(dataset, image_size, cache, num_workers=workers)
                seconds = time.perf_counter() - started
                cache.unlink()
                row = {
                    "case": case,
                    "images": len(dataset),
                    "image_size": image_size,
                    "workers": workers,
                    "seconds": round(seconds, 3),
                    "images_per_s": round(len(dataset) / seconds, 1),
                }
                print(f"{case:<18} workers={workers}: {row['images_per_s']:8.1f} images/s")
                rows.append(row)
    return {"photo_size": list(PHOTO_SIZE), "results": rows}


def photo_dataset(rows: datasets.Dataset, seed: int = 0) -> datasets.Dataset:
    """`rows`' images as photo-sized JPEGs: upscaled to `PHOTO_SIZE` (bicubic), Gaussian noise (std 6) added,
    encoded at quality 90 (about the bytes per pixel of a camera JPEG)."""
    rng = np.random.default_rng(seed)
    encoded = []
    for image in rows["image"]:
        pixels = np.asarray(image.convert("RGB").resize(PHOTO_SIZE, Image.BICUBIC), dtype=np.float32)
        noisy = np.clip(pixels + rng.normal(0, 6, pixels.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(noisy).save(buffer, format="JPEG", quality=90)
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image()})
    return datasets.Dataset.from_dict({"image": encoded}, features=features)
