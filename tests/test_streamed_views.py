"""Views streamed from the memory-mapped cache: the in-memory views bit for bit, a thread that stops and tells
its errors, the rule that picks the path, and host memory that does not grow with the number of images."""

from __future__ import annotations

import gc
import io
import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from PIL import Image

from hf_simclr import decoded_cache
from hf_simclr.arguments import UsageError
from hf_simclr.collective import Processes
from hf_simclr.data import decode_images, decoded_cache_file
from hf_simclr.evaluation.features import decode_labeled_split
from hf_simclr.folder_format import DECODED_CACHE_FOLDER
from hf_simclr.pretraining import views as views_module
from hf_simclr.pretraining.arguments import PretrainingArguments
from hf_simclr.pretraining.data_arguments import DataArguments
from hf_simclr.pretraining.host_gather import RowGather
from hf_simclr.pretraining.monitor import build_knn_monitor
from hf_simclr.pretraining.plan import RunPlan
from hf_simclr.pretraining.views import BatchOrder, GPUViews, StreamedViews, build_views, decoded_split_place

GATHER_THREAD = "hf_simclr-row-gather"


@pytest.fixture(scope="module")
def tiny_split() -> datasets.Dataset:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)) for _ in range(12)]
    return datasets.Dataset.from_dict(
        {"image": images}, features=datasets.Features({"image": datasets.Image()})
    )


def both_views(
    split: datasets.Dataset, cache_dir: Path, rank: int, world_size: int, start: int, steps: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """`steps` steps of views from step `start` for process `rank` of `world_size`: in memory, then streamed."""
    data = DataArguments(dataset_name="unused", image_size=16)
    args = PretrainingArguments(output_dir="unused", max_steps=5, per_device_train_batch_size=2)
    plan = RunPlan.create(args, len(split), world_size=world_size)
    order = BatchOrder(len(split), plan, rank, seed=3)
    cache = decoded_cache_file(cache_dir, split, 16)
    device = torch.device("cpu")
    in_memory = GPUViews(decode_images(split, 16), data.augmentation(), order, device, compile=False)
    streamed = StreamedViews(
        decode_images(split, 16, cache), data.augmentation(), order, device, False, cache
    )
    assert streamed.images.numpy().base is not None  # a memory map of the file, not a copy
    return (
        list(itertools.islice(in_memory.from_step(start), steps)),
        list(itertools.islice(streamed.from_step(start), steps)),
    )


@pytest.mark.parametrize(("rank", "world_size"), [(0, 1), (1, 2)], ids=["one-process", "rank-1-of-2"])
def test_streamed_views_are_the_in_memory_views_bit_for_bit_from_any_step(
    tiny_split, tmp_path, rank, world_size
):
    in_memory, streamed = both_views(tiny_split, tmp_path, rank, world_size, start=0, steps=5)
    assert [tuple(v.shape) for v in streamed] == [(4, 3, 16, 16)] * 5  # 2 images x 2 views
    assert not torch.equal(streamed[0], streamed[1])
    for expected, got in zip(in_memory, streamed, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # A resume from step 3 (the second epoch for one process, still the first for two) streams the same.
    _, resumed = both_views(tiny_split, tmp_path, rank, world_size, start=3, steps=2)
    for expected, got in zip(in_memory[3:], resumed, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_build_views_follows_keep_decoded_on_and_streams_from_the_datasets_cache_by_default(
    tiny_split, tmp_path, monkeypatch
):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    plan = RunPlan.create(
        PretrainingArguments(output_dir="unused", max_steps=2, per_device_train_batch_size=4),
        12,
        world_size=1,
    )

    def build(**data):
        data_args = DataArguments(dataset_name="unused", image_size=16, **data)
        return build_views(
            data_args, tiny_split, data_args.augmentation(), plan, Accelerator(cpu=True), 0, False
        )

    assert type(build()) is GPUViews  # auto: 9 KB of the host's available memory
    streamed = build(keep_decoded_on="host")
    assert isinstance(streamed, StreamedViews)
    assert streamed.cache_file.parent == tmp_path / "datasets-cache" / DECODED_CACHE_FOLDER
    assert streamed.cache_file.is_file() and streamed.memory_images.device.type == "cpu"
    free_memory_is(monkeypatch, 2 * 12 * 3 * 16 * 16 - 1)
    assert isinstance(build(), StreamedViews)  # auto: more than half of the free memory
    assert type(build(keep_decoded_on="device")) is GPUViews


def free_memory_is(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    """The free memory the rule reads, whatever the device (`auto` asks `decoded_cache.fits_in_memory`,
    `--keep_decoded_on device` the views' check)."""
    for module in (decoded_cache, views_module):
        monkeypatch.setattr(module, "free_memory", lambda device, processes=None: free)


def test_the_rule_keeps_on_the_device_what_takes_at_most_half_its_free_memory(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(decoded_cache, "host_available_memory", lambda: 1000)
    assert decoded_split_place("auto", 500, cpu) == "device"
    assert decoded_split_place("auto", 501, cpu) == "host"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two processes of this machine, each with its copy
    assert decoded_split_place("auto", 500, cpu) == "host"
    assert decoded_split_place("host", 1, cpu) == "host"
    assert decoded_split_place("device", 10**15, cpu) == "device"  # a CPU device: the host's memory, or a map
    cuda = torch.device("cuda")
    free_memory_is(monkeypatch, 4 * 10**9)
    assert decoded_split_place("auto", 2 * 10**9, cuda) == "device"
    assert decoded_split_place("auto", 2 * 10**9 + 1, cuda) == "host"
    assert decoded_split_place("device", 3 * 10**9, cuda) == "device"
    with pytest.raises(
        UsageError, match="--keep_decoded_on device: .* 5000.0 MB, more than the 4000.0 MB free"
    ):
        decoded_split_place("device", 5 * 10**9, cuda)


def mapped_file(tensor: torch.Tensor) -> Path | None:
    """The file whose pages hold `tensor`'s data (a memory map of it), from /proc/self/maps; None: anonymous."""
    address = tensor.data_ptr()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            start, end = (int(value, 16) for value in fields[0].split("-"))
            if start <= address < end:
                return Path(fields[5].strip()) if len(fields) == 6 and fields[5].startswith("/") else None
    return None


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads the memory maps of /proc (Linux)")
def test_the_monitor_and_the_evaluation_map_a_split_beyond_the_hosts_memory_from_the_datasets_cache(
    tiny_split, tmp_path, monkeypatch
):
    # Before: without --decoded_cache_dir the kNN monitor and the probe decoded every split into memory,
    # whatever its size. Now the rule of the streamed views decides: beyond half of the host's available
    # memory, the split is decoded into the datasets cache and its pages are the file's.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    folder = tmp_path / "datasets-cache" / DECODED_CACHE_FOLDER
    labeled = tiny_split.add_column("label", [row % 3 for row in range(12)])
    split_bytes = 12 * 3 * 16 * 16
    monkeypatch.setattr(decoded_cache, "host_available_memory", lambda: 2 * split_bytes)
    in_memory = decode_labeled_split(labeled, 16)
    assert mapped_file(in_memory.images) is None and not folder.exists()  # at most half: in memory

    monkeypatch.setattr(decoded_cache, "host_available_memory", lambda: 2 * split_bytes - 1)
    mapped = decode_labeled_split(labeled, 16)
    assert mapped_file(mapped.images) == decoded_cache_file(folder, labeled, 16)
    assert torch.equal(mapped.images, in_memory.images) and torch.equal(mapped.labels, in_memory.labels)

    data_args = DataArguments(dataset_name="unused", image_size=16)
    queries = labeled.select(range(6))
    monitor = build_knn_monitor(Processes(), data_args, labeled, queries, None, data_args.augmentation(), k=3)
    assert mapped_file(monitor.memory_images) == decoded_cache_file(folder, labeled, 16)
    assert mapped_file(monitor.query_images) is None  # 6 images: half the split, within the memory
    monkeypatch.setattr(decoded_cache, "host_available_memory", lambda: split_bytes - 1)
    monitor = build_knn_monitor(Processes(), data_args, labeled, queries, None, data_args.augmentation(), k=3)
    assert mapped_file(monitor.query_images) == decoded_cache_file(folder, queries, 16)
    assert torch.equal(monitor.query_images, in_memory.images[:6])


def test_keep_decoded_on_refuses_other_values_and_the_cpu_pipeline(capsys):
    from hf_simclr.pretraining.command import PRETRAIN

    with pytest.raises(UsageError, match="--keep_decoded_on gpu must be device, host or auto"):
        DataArguments(dataset_name="unused", keep_decoded_on="gpu")
    with pytest.raises(SystemExit):  # GPU views only: its declared condition (tests/test_conditions.py)
        PRETRAIN.parse(["--keep_decoded_on", "host", "--augment_on", "cpu"])
    assert "--keep_decoded_on host applies with --augment_on gpu or auto" in capsys.readouterr().err
    PRETRAIN.parse(["--augment_on", "cpu"])  # not typed: its default, recorded as not applied


def gather_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == GATHER_THREAD]


def wait_for_no_gather_thread() -> None:
    deadline = time.monotonic() + 5
    while gather_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not gather_threads(), "the row-gathering thread outlived its views"


def test_an_error_in_the_gather_thread_is_raised_in_the_loop_at_its_step():
    images = torch.arange(10 * 3, dtype=torch.uint8).reshape(10, 3)
    steps = [(0, torch.tensor([1, 2])), (1, torch.tensor([3, 4])), (2, torch.tensor([5, 99]))]
    gather = RowGather(images, iter(steps), batch_rows=2, pin_memory=False)
    seen = []
    with pytest.raises((IndexError, RuntimeError), match="out of range"):
        for step, rows in gather:
            seen.append((step, rows.clone()))
    assert [step for step, _ in seen] == [0, 1]
    torch.testing.assert_close(seen[1][1], images[[3, 4]], rtol=0, atol=0)
    assert not gather.running


def test_the_gather_thread_stops_when_the_views_are_closed_or_the_loop_is_interrupted(tiny_split, tmp_path):
    data = DataArguments(dataset_name="unused", image_size=16)
    plan = RunPlan.create(
        PretrainingArguments(output_dir="unused", max_steps=50, per_device_train_batch_size=2),
        12,
        world_size=1,
    )
    cache = decoded_cache_file(tmp_path, tiny_split, 16)
    images = decode_images(tiny_split, 16, cache)
    views = StreamedViews(
        images, data.augmentation(), BatchOrder(12, plan, 0, 0), torch.device("cpu"), False, cache
    )
    steps = views.from_step(0)
    next(steps)
    assert len(gather_threads()) == 1
    steps.close()
    wait_for_no_gather_thread()

    def train_until_interrupted() -> None:
        for step, _ in enumerate(views.from_step(0)):
            if step == 2:
                raise KeyboardInterrupt  # Ctrl-C in the middle of a run

    with pytest.raises(KeyboardInterrupt):
        train_until_interrupted()
    gc.collect()
    wait_for_no_gather_thread()


# ----------------------------------------------------------------------------------------------
# Bounded memory: the same peak of anonymous memory for 20,000 and 200,000 images
# ----------------------------------------------------------------------------------------------

# 32 px images: the whole 200,000-image split is 614 MB, 553 MB more than the 20,000-image one. The margin
# covers what legitimately grows with the split (the epoch's permutation, 1.6 MB; the Arrow table's metadata,
# ~4 MB) and the noise between runs (the peak of one size varied by up to 40 MB over runs on the 2-core dev
# machine, 730-770 MB); a split held in anonymous memory would exceed it more than five times.
MEMORY_SIZES = (20_000, 200_000)
MEMORY_IMAGE_SIZE = 32
MEMORY_MARGIN_MB = 100


def generated_split(folder: Path, rows: int) -> Path:
    """A `save_to_disk` split of `rows` copies of one small PNG (cheap to hash; never decoded: the cache file
    is written directly, as decoding 200,000 images would take 25 s here)."""
    png = io.BytesIO()
    Image.fromarray(np.full((MEMORY_IMAGE_SIZE, MEMORY_IMAGE_SIZE, 3), 128, dtype=np.uint8)).save(png, "PNG")
    features = datasets.Features({"image": datasets.Image()})
    split = datasets.Dataset.from_dict({"image": [{"bytes": png.getvalue(), "path": None}] * rows}, features)
    datasets.DatasetDict({"train": split}).save_to_disk(str(folder))
    return folder


def write_cache_directly(data: Path, cache_dir: Path) -> None:
    """The decoded cache of the split at `data`, as `decode_images` names and lays it out, with varied pixels."""
    data_args = DataArguments(dataset_name=str(data), image_size=MEMORY_IMAGE_SIZE)
    split = data_args.load_split("train_split", seed=0)
    cache = decoded_cache_file(cache_dir, split, MEMORY_IMAGE_SIZE)
    cache.parent.mkdir(parents=True, exist_ok=True)
    shape = (len(split), 3, MEMORY_IMAGE_SIZE, MEMORY_IMAGE_SIZE)
    array = np.lib.format.open_memmap(cache, mode="w+", dtype=np.uint8, shape=shape)
    pattern = np.random.default_rng(0).integers(0, 256, (1000, *shape[1:]), dtype=np.uint8)
    for start in range(0, len(split), len(pattern)):
        array[start : start + len(pattern)] = pattern[: len(split) - start]
    array.flush()
    del array


def peak_anonymous_memory_of_a_streamed_run(data: Path, cache_dir: Path, output_dir: Path) -> int:
    """Run [`measure_streamed_run`] in a fresh process; its peak `RssAnon` in bytes."""
    arguments = json.dumps({"data": str(data), "cache_dir": str(cache_dir), "output_dir": str(output_dir)})
    done = subprocess.run(
        [sys.executable, __file__, arguments], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "streamed from" in done.stdout, done.stdout  # the headline names the path taken
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_anon"]


@pytest.mark.slow
def test_host_memory_does_not_grow_with_the_number_of_images(tmp_path):
    peaks = {}
    for rows in MEMORY_SIZES:
        data = generated_split(tmp_path / f"data-{rows}", rows)
        write_cache_directly(data, tmp_path / "cache")
        peaks[rows] = peak_anonymous_memory_of_a_streamed_run(
            data, tmp_path / "cache", tmp_path / f"run-{rows}"
        )
    small, large = (peaks[rows] / 1e6 for rows in MEMORY_SIZES)
    split_mb = (MEMORY_SIZES[1] - MEMORY_SIZES[0]) * 3 * MEMORY_IMAGE_SIZE**2 / 1e6
    assert abs(large - small) < MEMORY_MARGIN_MB, (
        f"peak RssAnon {small:.0f} MB for {MEMORY_SIZES[0]:,} images, {large:.0f} MB for {MEMORY_SIZES[1]:,} "
        f"(the larger split is {split_mb:.0f} MB more)"
    )


def rss_anon() -> int:
    """This process's anonymous resident memory (`RssAnon`: not the memory-mapped file's pages), in bytes."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("RssAnon:"))


def measure_streamed_run(data: str, cache_dir: str, output_dir: str) -> None:
    """In the subprocess: a short streamed pretraining, `RssAnon` sampled every millisecond; prints the peak."""
    from hf_simclr.pretraining.loop import pretrain
    from hf_simclr.pretraining.model_arguments import ModelArguments

    peak, done = [rss_anon()], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    pretrain(
        ModelArguments(cifar_stem=False, backbone_kwargs='{"norm_layer": "groupnorm"}'),
        DataArguments(
            dataset_name=data,
            image_size=MEMORY_IMAGE_SIZE,
            keep_decoded_on="host",
            decoded_cache_dir=cache_dir,
        ),
        PretrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=32,
            max_steps=4,
            report_to="none",
            knn_every_epochs=0,
            logging_steps=1,
            warmup_epochs=0,
            checkpointing_steps="none",
            torch_compile=False,
        ),
    )
    done.set()
    sampler.join()
    print(json.dumps({"peak_rss_anon": max(peak[0], rss_anon())}))


# ----------------------------------------------------------------------------------------------
# The host gather benchmark (`scripts/benchmark.py --mode gather`)
# ----------------------------------------------------------------------------------------------

GATHER_REPORT = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu-gather-2026-12-04.json"


def test_the_gather_benchmark_times_every_method_and_the_docs_hold_its_table():
    from hf_simclr.benchmark.host_gather import benchmark_host_gather, format_gather_table

    report = benchmark_host_gather(((8, 4, 50),))
    (row,) = report["results"]
    assert row["step_mb"] == 4 * 3 * 8 * 8 / 1e6 and report["torch_threads"] == 1
    assert {"plain_copy", "index_select", "row_gather_thread", "cold_index_select"} <= set(row["gb_per_s"])
    assert all(rate > 0 for rate in row["gb_per_s"].values())
    committed = json.loads(GATHER_REPORT.read_text())
    assert format_gather_table(committed) in (GATHER_REPORT.parents[1] / "docs" / "benchmarks.md").read_text()


if __name__ == "__main__":
    measure_streamed_run(**json.loads(sys.argv[1]))
