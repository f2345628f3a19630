"""The training benchmark (`scripts/benchmark.py --mode training`) at a tiny size on the CPU: its numbers mean
something on a GPU only, but its code runs here, so a broken import or call shows up between GPU loans."""

import json

import datasets
import numpy as np
import pytest
from PIL import Image

from hf_simclr.benchmark.arguments import TrainingCase
from hf_simclr.benchmark.training import BenchmarkScale, benchmark_training
from hf_simclr.folder_format import DECODED_SUBFOLDER

TINY = BenchmarkScale(
    model_steps=1,
    model_warmup=1,
    gpu_pipeline_steps=4,
    gpu_pipeline_log_every=2,
    cpu_pipeline_steps=4,
    cpu_pipeline_log_every=2,
    compile_model=False,
)


@pytest.mark.slow
def test_training_benchmark_runs_at_a_tiny_size_on_the_cpu(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(16)]
    train = datasets.Dataset.from_dict(
        {"image": images, "label": [i % 2 for i in range(16)]},
        features=datasets.Features(
            {"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}
        ),
    )
    datasets.DatasetDict({"train": train}).save_to_disk(tmp_path / "data")
    case = TrainingCase("tiny-32px-resnet18", "resnet18", "cifar10", 8)

    (row,) = benchmark_training(
        str(tmp_path / "data"), str(tmp_path / "work"), (case,), stl10_samples=2, cpu_workers=1, scale=TINY
    )

    for key in ("model_only_eager_views_per_s", "model_only_views_per_s"):
        assert row[key] > 0, key
    assert row["gpu_pipeline_views_per_s"] > 0 and row["cpu_pipeline_views_per_s"] > 0
    assert row["gpu_streamed_pipeline_views_per_s"] > 0 and row["streamed_fraction_of_in_memory"] > 0
    assert list((tmp_path / "work" / DECODED_SUBFOLDER).glob("*.npy"))  # the streamed run mapped its cache
    assert row["peak_gpu_memory_gib"] is None  # no GPU here
    assert row["views_per_step"] == 16 and row["image_size"] == 32
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert printed[-1] == row
