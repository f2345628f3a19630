"""One real run on a slice of CIFAR-10: pretrain, then probe above the random-init baseline (the card and the
push of such a folder are tested on a tiny one, in test_hub.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoModel

from hf_simclr import SimCLRModel
from hf_simclr.evaluation.arguments import LinearProbeArguments
from hf_simclr.evaluation.probe import run_linear_probe
from hf_simclr.pretraining.arguments import PretrainingArguments
from hf_simclr.pretraining.data_arguments import DataArguments
from hf_simclr.pretraining.loop import pretrain
from hf_simclr.pretraining.model_arguments import ModelArguments

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def probed_folder(cifar10_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ResNet-18 (CIFAR stem) pretrained on 1,024 CIFAR-10 images at 16px for 6 epochs in batches of 128,
    then probed on 1,000 / 500 images (3 minutes on the 2-core development machine: 152 s + 28 s). Measured
    there: linear top-1 27.6% against 22.8% for the random-init encoder (2,048 images in batches of 256 and
    2,000 / 1,000 probe images gave 31.3% / 26.6% in twice the time)."""
    folder = tmp_path_factory.mktemp("e2e") / "model"
    pretrain(
        ModelArguments(),
        DataArguments(
            dataset_name=str(cifar10_path), max_train_samples=1024, max_eval_samples=1000, image_size=16
        ),
        PretrainingArguments(
            output_dir=str(folder),
            num_train_epochs=6,
            per_device_train_batch_size=128,
            optimizer="sgd",
            learning_rate=0.3,
            warmup_epochs=1,
            knn_every_epochs=3,
            report_to="none",
            logging_steps=8,
            seed=42,
        ),
    )
    run_linear_probe(
        LinearProbeArguments(
            model_name_or_path=str(folder),
            dataset_name=str(cifar10_path),
            max_train_samples=1000,
            max_eval_samples=500,
            label_fractions=[0.1],
            knn_k=[10],
            plots=True,
            device="cpu",
        )
    )
    return folder


def test_loss_falls_and_the_folder_loads(probed_folder: Path) -> None:
    log = [json.loads(line) for line in (probed_folder / "log_history.jsonl").read_text().splitlines()]
    losses = [record["loss"] for record in log if "loss" in record]
    assert len(losses) == 6 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert [record["epoch"] for record in log if "knn_top1" in record] == [3, 6]
    model = AutoModel.from_pretrained(probed_folder)
    assert isinstance(model, SimCLRModel) and model.config.cifar_stem


def test_probe_beats_the_random_init_baseline(probed_folder: Path) -> None:
    results = json.loads((probed_folder / "results.json").read_text())
    assert results["linear_top1"] > results["random_init_baseline"]["linear_top1"]
    assert {"linear_top5", "knn_top1", "per_class", "label_fraction", "split_sizes", "seed"} <= results.keys()
    assert {"tsne.png", "confusion_matrix.png", "training_curves.png"} <= {
        p.name for p in probed_folder.iterdir()
    }
