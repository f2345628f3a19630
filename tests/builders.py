"""Builders shared by the test modules: tiny model folders and tiny generated datasets (no download)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image

from hf_simclr import SimCLRConfig, SimCLRForPreTraining, folder_format
from hf_simclr.augmentation import augmentation_preset
from hf_simclr.model_folder import save_model_folder

CLASSES = ["red", "green", "blue"]
# Six classes (dominant channel x brightness), for tests where top-3 must not hold every label by construction.
SIX_CLASSES = ["red", "green", "blue", "dark red", "dark green", "dark blue"]


# ----------------------------------------------------------------------------------------------
# Tiny model folder and tiny generated dataset
# ----------------------------------------------------------------------------------------------


def save_tiny_model(folder: Path, log_history: bool = True) -> Path:
    """A pretraining-style folder: ResNet-18 with the CIFAR stem at 32 px, random weights."""
    torch.manual_seed(1)  # not the probe's seed 0, so the random-init baseline differs from it
    model = SimCLRForPreTraining(SimCLRConfig(backbone="resnet18", cifar_stem=True, image_size=32))
    training_args = {"dataset_name": "generated", "epochs": 1, "batch_size": 8, "wall_time_seconds": 1.5}
    save_model_folder(model, folder, augmentation_preset("cifar10"), training_args)
    if log_history:
        records = [
            {
                "step": step,
                "epoch": step / 4,
                "loss": 5.0 - step,
                "learning_rate": 0.1,
                "contrastive_top1": 0.1 * step,
            }
            for step in range(1, 5)
        ] + [{"step": 4, "epoch": 1.0, "knn_top1": 0.4}]
        (folder / folder_format.LOG_HISTORY_FILE).write_text(
            "".join(json.dumps(record) + "\n" for record in records)
        )
    return folder


def colour_images(labels: list[int], seed: int) -> list[Image.Image]:
    """32x32 images whose dominant channel is the class (label mod 3; labels 3-5 darker): easy for any
    encoder, even a random one."""
    rng = np.random.default_rng(seed)
    images = []
    for label in labels:
        pixels = rng.integers(0, 90, (32, 32, 3))
        pixels[..., label % 3] += 140 if label < 3 else 60
        images.append(Image.fromarray(pixels.astype(np.uint8)))
    return images


def save_tiny_dataset(
    folder: Path, per_class: tuple[int, int] = (12, 4), labeled: bool = True, classes: list[str] = CLASSES
) -> Path:
    """A `save_to_disk` DatasetDict with train/test splits of colour images (labels optional)."""
    splits = {}
    for split, count, seed in (("train", per_class[0], 0), ("test", per_class[1], 1)):
        labels = [label for label in range(len(classes)) for _ in range(count)]
        columns = {"image": colour_images(labels, seed)}
        features = {"image": datasets.Image()}
        if labeled:
            columns["label"] = labels
            features["label"] = datasets.ClassLabel(names=classes)
        splits[split] = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return folder


def pretraining_folder(folder: Path, cifar_stem: bool, seed: int = 0) -> Path:
    """A folder as pretraining writes it (encoder + projection head), random weights, 32 px views."""
    torch.manual_seed(seed)
    model = SimCLRForPreTraining(SimCLRConfig(backbone="resnet18", cifar_stem=cifar_stem, image_size=32))
    with torch.no_grad():  # running statistics that differ from the defaults, so eval mode is checked too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    save_model_folder(model, folder, augmentation_preset("cifar10"), {"epochs": 1})
    return folder


# ----------------------------------------------------------------------------------------------
# Trainer's settings of a short fine-tuning or distillation on the CPU
# ----------------------------------------------------------------------------------------------


def quick_training(output_dir: Path, **overrides):
    """`TrainingArguments` of one short epoch on the CPU, quiet, no checkpoints, seeded; `overrides` change them."""
    from transformers import TrainingArguments

    settings = dict(
        output_dir=str(output_dir),
        num_train_epochs=1,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=12,
        learning_rate=1e-3,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=7,
    )
    return TrainingArguments(**{**settings, **overrides})


# ----------------------------------------------------------------------------------------------
# A tiny pretraining run on generated data
# ----------------------------------------------------------------------------------------------

# 24 images of 16 px in batches of 8: 3 steps per epoch, 6 steps, a checkpoint every 3 (all kept).
TINY_RUN = dict(
    report_to="none",
    knn_every_epochs=0,
    logging_steps=1,
    warmup_epochs=0,
    per_device_train_batch_size=8,
    max_steps=6,
    checkpointing_steps="3",
    checkpoints_total_limit=0,
)


def tiny_pretraining(output_dir: Path, data: Path, data_changes: dict | None = None, **changes) -> dict:
    """`pretrain` of a GroupNorm ResNet-18 on 24 images of `data` at 16 px, `TINY_RUN` with `changes`."""
    from hf_simclr.pretraining.arguments import PretrainingArguments
    from hf_simclr.pretraining.data_arguments import DataArguments
    from hf_simclr.pretraining.loop import pretrain
    from hf_simclr.pretraining.model_arguments import ModelArguments

    return pretrain(
        ModelArguments(backbone_kwargs='{"norm_layer": "groupnorm"}'),
        DataArguments(dataset_name=str(data), image_size=16, max_train_samples=24, **(data_changes or {})),
        PretrainingArguments(output_dir=str(output_dir), **{**TINY_RUN, **changes}),
    )


# ----------------------------------------------------------------------------------------------
# Python in a terminal
# ----------------------------------------------------------------------------------------------

# What transformers asks before running a folder's code without trust_remote_code, on a terminal only.
REMOTE_CODE_PROMPT = "Do you wish to run the custom code"


def run_in_a_terminal(code: str, cwd: Path) -> tuple[str, float]:
    """`code` run by python with a pseudo-terminal as stdin (nothing is ever typed): its output, its seconds.

    transformers asks `Do you wish to run the custom code? [y/N]` only when stdin is a terminal, and waits for
    the answer (15 s): run where a prompt would show, a call that asks is seen, and timed."""
    controller, terminal = os.openpty()
    started = time.perf_counter()
    try:
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=cwd,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr, time.perf_counter() - started
