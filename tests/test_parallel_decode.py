"""Decoding a split on every core and every process (`--preprocessing_num_workers`, `torch.distributed`).

Worker processes and processes of a run write disjoint rows of one cache file: the file is the same bytes
as one process's; an interrupted decode leaves no cache and the next one completes it; a second run waits
for the first one's decode; the cache of another dataset or size is never read.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import datasets
import filelock
import numpy as np
import pytest
from PIL import Image

import hf_simclr.data as data
from hf_simclr.arguments import UsageError
from hf_simclr.data import decode_images, decoded_cache_file
from hf_simclr.decoded_cache import machine_lock_file, worker_count

TESTS = Path(__file__).parent
SIZE = 8
DECODING_REPORT = TESTS.parent / "benchmarks" / "cpu-decoding-2026-12-07.json"


def image_rows(count: int, seed: int = 0) -> datasets.Dataset:
    """`count` random 14 x 11 images (PNG bytes), so that every row is resized and cropped to SIZE."""
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (11, 14, 3), dtype=np.uint8)) for _ in range(count)]
    return datasets.Dataset.from_dict(
        {"image": images}, features=datasets.Features({"image": datasets.Image()})
    )


@pytest.fixture
def few_rows_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 7 rows, so that a few dozen rows make several chunks for two workers."""
    monkeypatch.setattr(data, "DECODE_CHUNK_ROWS", 7)


def test_two_workers_write_the_bytes_of_one_worker(tmp_path, few_rows_per_chunk):
    rows = image_rows(60)
    one = decode_images(rows, SIZE, tmp_path / "one" / "cache.npy", num_workers=1)
    two = decode_images(rows, SIZE, tmp_path / "two" / "cache.npy", num_workers=2)
    assert (tmp_path / "one" / "cache.npy").read_bytes() == (tmp_path / "two" / "cache.npy").read_bytes()
    assert np.array_equal(one.numpy(), two.numpy())
    assert np.array_equal(decode_images(rows, SIZE, num_workers=2).numpy(), one.numpy())  # in memory too
    assert os.listdir(tmp_path / "two") == ["cache.npy"]  # no temporary file left


def test_the_default_workers_are_the_cores_shared_among_the_machines_processes(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert worker_count(None, 1_000_000, 1000) == 4
    assert worker_count(None, 2_500, 1000) == 2  # at least a chunk of rows each
    assert worker_count(None, 10, 1000) == 1
    assert worker_count(3, 10, 1000) == 3  # asked for: given, up to one worker per row
    assert worker_count(3, 2, 1000) == 2


def test_a_worker_that_fails_midway_leaves_no_cache_and_the_next_decode_completes_it(
    tmp_path, monkeypatch, few_rows_per_chunk
):
    rows = image_rows(40)
    expected = decode_images(rows, SIZE, num_workers=1).numpy()
    folder = tmp_path / "cache"
    folder.mkdir()
    # what a SIGKILL of an earlier decode leaves: a temporary file of the cache's name, which nothing reads
    cache = decoded_cache_file(folder, rows, SIZE)
    (folder / f".{cache.name}.abc.tmp").write_bytes(b"half")
    eval_view, parent, calls = data.eval_view, os.getpid(), []

    def fails_midway(image, size):
        calls.append(1)
        if os.getpid() != parent and len(calls) == 10:  # a worker (of the 2), half-way through its rows
            raise RuntimeError("worker killed")
        return eval_view(image, size)

    monkeypatch.setattr(data, "eval_view", fails_midway)
    with pytest.raises(RuntimeError, match="worker killed"):
        decode_images(rows, SIZE, cache, num_workers=2)
    assert sorted(os.listdir(folder)) == [f".{cache.name}.abc.tmp"]  # no cache, no new temporary file
    monkeypatch.setattr(data, "eval_view", eval_view)
    assert np.array_equal(decode_images(rows, SIZE, cache, num_workers=2).numpy(), expected)
    assert np.array_equal(np.load(cache), expected)


def test_a_bad_image_in_a_workers_rows_is_named_and_leaves_no_cache(tmp_path, few_rows_per_chunk):
    rows = image_rows(30).cast_column("image", datasets.Image(decode=False))
    broken = rows.map(
        lambda row, i: {"image": {"bytes": b"x" if i == 17 else row["image"]["bytes"], "path": None}},
        with_indices=True,
    )
    with pytest.raises(UsageError, match="row 17 of the dataset: cannot decode image"):
        decode_images(broken, SIZE, tmp_path / "cache.npy", num_workers=2)
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_waits_for_the_first_runs_decode_and_reads_its_cache(tmp_path, monkeypatch):
    rows = image_rows(10)
    cache = tmp_path / "cache.npy"
    expected = decode_images(rows, SIZE, num_workers=1).numpy()
    other_run = filelock.FileLock(machine_lock_file(cache))
    other_run.acquire()
    decoded = []
    monkeypatch.setattr(data, "_decode_into", lambda *args: decoded.append(args))
    result = {}
    second = threading.Thread(target=lambda: result.update(images=decode_images(rows, SIZE, cache)))
    second.start()
    time.sleep(0.5)
    assert second.is_alive() and not cache.exists()  # it waits for the lock
    np.save(cache, expected)  # the first run's decode ends
    other_run.release()
    second.join(timeout=10)
    assert np.array_equal(result["images"].numpy(), expected) and decoded == []  # read, not decoded again


def test_the_cache_of_another_dataset_or_size_is_never_read(tmp_path):
    rows = image_rows(12)
    changed = image_rows(12, seed=1)
    first = decode_images(rows, SIZE, decoded_cache_file(tmp_path, rows, SIZE)).numpy().copy()
    assert decoded_cache_file(tmp_path, changed, SIZE) != decoded_cache_file(tmp_path, rows, SIZE)
    assert decoded_cache_file(tmp_path, rows, 12) != decoded_cache_file(tmp_path, rows, SIZE)
    other = decode_images(changed, SIZE, decoded_cache_file(tmp_path, changed, SIZE)).numpy()
    assert np.array_equal(other, decode_images(changed, SIZE, num_workers=1).numpy())
    assert not np.array_equal(other, first)
    assert decode_images(rows, 12, decoded_cache_file(tmp_path, rows, 12)).shape == (12, 3, 12, 12)
    # a file cut short at the cache's name (a copy that failed) is decoded again, not read
    cache = decoded_cache_file(tmp_path, rows, SIZE)
    cache.write_bytes(cache.read_bytes()[:-100])
    assert np.array_equal(decode_images(rows, SIZE, cache).numpy(), first)


def test_the_workers_flag_is_checked_when_parsed():
    from hf_simclr.pretraining.data_arguments import DataArguments

    with pytest.raises(UsageError, match="--preprocessing_num_workers 0 must be at least 1"):
        DataArguments(dataset_name="uoft-cs/cifar10", preprocessing_num_workers=0)


def test_the_decoding_benchmark_runs_at_a_tiny_size_and_the_docs_hold_its_table(tmp_path):
    from builders import save_tiny_dataset

    from hf_simclr.benchmark.decoding import benchmark_decoding
    from hf_simclr.benchmark.report import format_decoding_table

    report = benchmark_decoding(str(save_tiny_dataset(tmp_path / "data")), "train", [1, 2], 12, 3)
    cases = [(row["case"], row["images"], row["workers"]) for row in report["results"]]
    assert cases == [
        (case, images, workers)
        for case, images in (("cifar10 to 32 px", 12), ("photos to 96 px", 3), ("photos to 224 px", 3))
        for workers in (1, 2)
    ]
    assert all(row["images_per_s"] > 0 for row in report["results"])
    committed = json.loads(DECODING_REPORT.read_text())
    assert format_decoding_table(committed) in (TESTS.parent / "docs" / "benchmarks.md").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes under torchrun
def test_two_processes_decode_their_shares_into_the_file_of_one_process(tmp_path):
    rows = image_rows(128)  # two shares of whole pages: 64 rows of 8 px are 3 pages
    rows.save_to_disk(str(tmp_path / "data"))
    encoded = rows.cast_column("image", datasets.Image(decode=False))
    broken = encoded.map(  # row 100: in the second process's share
        lambda row, i: {"image": {"bytes": b"x" if i == 100 else row["image"]["bytes"], "path": None}},
        with_indices=True,
    )
    broken.cast_column("image", datasets.Image()).save_to_disk(str(tmp_path / "broken"))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        str(TESTS / "distributed_decode_worker.py"), str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [report["decoded"] for report in reports] == [64, 64]  # each its share, once
    assert [report["decoded_again"] for report in reports] == [0, 0]
    cache = decoded_cache_file(tmp_path / "cache", datasets.load_from_disk(str(tmp_path / "data")), SIZE)
    alone = tmp_path / "alone.npy"
    decode_images(rows, SIZE, alone, num_workers=1)
    assert cache.read_bytes() == alone.read_bytes()
    assert os.listdir(tmp_path / "cache") == [cache.name]  # no temporary or probe file left
    for report in reports:  # both processes raise the failing process's error, naming it
        assert (
            "row 100 of the dataset: cannot decode image" in report["error"]
            and "(process 1)" in report["error"]
        )
    assert list((tmp_path / "broken_cache").iterdir()) == []
