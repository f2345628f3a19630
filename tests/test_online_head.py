"""The online linear head (`hf_simclr.pretraining.online_head`): no gradient reaches the encoder, it learns a
separable set, and a run with it logs its top-1 without changing the run's losses or the saved model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_simclr import SimCLRConfig, SimCLRForPreTraining
from hf_simclr.cached_gradients import cached_gradient_step
from hf_simclr.pretraining.arguments import PretrainingArguments
from hf_simclr.pretraining.data_arguments import DataArguments
from hf_simclr.pretraining.loop import pretrain
from hf_simclr.pretraining.model_arguments import ModelArguments
from hf_simclr.pretraining.online_head import OnlineLinearHead


def test_the_encoders_gradients_are_the_same_with_the_head_and_without() -> None:
    torch.manual_seed(0)
    config = SimCLRConfig(backbone="resnet18", cifar_stem=True, image_size=16, projection_hidden_dim=32)
    model = SimCLRForPreTraining(config)
    pixel_values = torch.randn(2 * 8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for chunk_size in (None, 4):
        model.zero_grad(set_to_none=True)
        output = cached_gradient_step(model, pixel_values, chunk_size)
        without = {name: p.grad.clone() for name, p in model.named_parameters()}
        head = OnlineLinearHead(model.simclr.hidden_size, torch.arange(8) % 3)
        head.step(output.h, torch.arange(8))
        assert head.classifier.weight.abs().sum() > 0  # it learned something
        for name, p in model.named_parameters():
            assert torch.equal(p.grad, without[name]), name


def test_its_accuracy_on_a_separable_toy_set_climbs() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 4
    centres = 1.5 * torch.randn(4, 16, generator=generator)  # noise of 1: separable, not at once
    head = OnlineLinearHead(16, labels)
    accuracies = []
    for _ in range(60):
        rows = torch.randperm(64, generator=generator)[:16]
        h = centres[labels[rows]].repeat(2, 1) + torch.randn(32, 16, generator=generator)
        accuracies.append(head.step(h, rows).item())
    # zeros at first: every view called class 0, the share of class 0 in the batch
    assert accuracies[0] < 0.4 and sum(accuracies[-10:]) / 10 > 0.95, accuracies


def test_unlabelled_rows_are_left_out() -> None:
    head = OnlineLinearHead(4, torch.tensor([0, 1, -1, -1]))
    h = torch.eye(4).repeat(2, 1)
    head.step(h, torch.arange(4))
    # the unlabelled images' features (rows 2 and 3 of the identity) had no gradient
    assert head.classifier.weight[:, 2:].abs().sum() == 0 and head.classifier.weight[:, :2].abs().sum() > 0


@pytest.mark.slow  # two short runs
def test_a_run_logs_its_top1_and_keeps_its_losses_and_its_model_folder(
    cifar10_path: Path, tmp_path: Path
) -> None:
    logs = {}
    for online in (True, False):
        output_dir = tmp_path / str(online)
        pretrain(
            ModelArguments(),
            DataArguments(dataset_name=str(cifar10_path), max_train_samples=64, image_size=16),
            PretrainingArguments(
                output_dir=str(output_dir),
                per_device_train_batch_size=16,
                max_steps=3,
                logging_steps=1,
                report_to="none",
                knn_every_epochs=0,
                checkpointing_steps="none",
                online_linear_head=online,
                objective="dclw",
                seed=1,
            ),
        )
        logs[online] = [
            json.loads(line) for line in (output_dir / "log_history.jsonl").read_text().splitlines()
        ]
        recorded = json.loads((output_dir / "training_args.json").read_text())
        assert recorded["online_linear_head_applied"] is online and recorded["objective"] == "dclw"
        assert recorded["dclw_sigma_applied"] == 0.5 and recorded["sogclr_gamma_applied"] is None
        assert not any("classifier" in name for name in load_file(output_dir / "model.safetensors"))
    assert all(0 <= record["online_top1"] <= 1 for record in logs[True])
    assert not any("online_top1" in record for record in logs[False])
    assert [r["loss"] for r in logs[True]] == [r["loss"] for r in logs[False]]  # bit for bit
