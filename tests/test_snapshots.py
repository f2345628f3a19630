"""Encoder snapshots at chosen epochs: written during pretraining, loadable, never pruned; bad lists refused."""

from __future__ import annotations

import json
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModel

from hf_simclr import SimCLRModel
from hf_simclr.devices import device_description
from hf_simclr.hub import UPLOAD_IGNORE_PATTERNS
from hf_simclr.pretraining.arguments import PretrainingArguments, parse_snapshot_epochs
from hf_simclr.pretraining.data_arguments import DataArguments
from hf_simclr.pretraining.loop import pretrain
from hf_simclr.pretraining.model_arguments import ModelArguments

TINY = dict(
    report_to="none",
    knn_every_epochs=0,
    logging_steps=1,
    warmup_epochs=0,
    seed=0,
    per_device_train_batch_size=8,
)
FAST_MODEL = ModelArguments(cifar_stem=False)  # the ImageNet stem downsamples 4x: a fast step at 16px


def tiny_data(dataset: Path) -> DataArguments:
    return DataArguments(dataset_name=str(dataset), max_train_samples=24, image_size=16)  # 3 steps per epoch


def test_snapshots_are_encoder_folders_kept_apart_from_pruned_checkpoints(
    cifar10_path: Path, tmp_path: Path
) -> None:
    output_dir = tmp_path / "run"
    args = PretrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=3,
        snapshot_epochs="3, 1",
        checkpoints_total_limit=1,
        **TINY,
    )
    assert args.snapshot_epochs == [1, 3]
    pretrain(FAST_MODEL, tiny_data(cifar10_path), args)

    snapshots = output_dir / "snapshots"
    assert sorted(p.name for p in snapshots.iterdir()) == ["epoch_1", "epoch_3"]  # no temporary folder left
    assert [p.name for p in (output_dir / "checkpoints").iterdir()] == ["step_9"]  # pruned; snapshots kept
    with safe_open(snapshots / "epoch_1" / "model.safetensors", framework="pt") as handle:
        keys = list(handle.keys())
    assert keys and all(key.startswith("backbone.") for key in keys)  # the encoder only, no head
    assert json.loads((snapshots / "epoch_1" / "training_args.json").read_text())["steps"] == 3
    files = [str(path.relative_to(output_dir)) for path in snapshots.rglob("*") if path.is_file()]
    ignored = [name for name in files if any(fnmatch(name, pattern) for pattern in UPLOAD_IGNORE_PATTERNS)]
    assert files and ignored == files  # a push leaves the snapshots behind
    run_record = json.loads((output_dir / "training_args.json").read_text())
    assert run_record["device"] == device_description() and run_record["wall_time_seconds"] > 0

    first, last = (AutoModel.from_pretrained(snapshots / name) for name in ("epoch_1", "epoch_3"))
    assert isinstance(first, SimCLRModel) and isinstance(last, SimCLRModel)
    final = AutoModel.from_pretrained(output_dir).state_dict()  # the finished model = the epoch-3 snapshot
    for key, value in last.state_dict().items():
        torch.testing.assert_close(value, final[key], atol=0, rtol=0, msg=key)
    assert not torch.equal(first.state_dict()["backbone.conv1.weight"], final["backbone.conv1.weight"])


@pytest.mark.parametrize(
    "value, message",
    [
        ("1,0", r"'0' is not a positive whole epoch"),
        ("1,two", r"'two' is not a positive whole epoch"),
        ("2.5", r"'2.5' is not a positive whole epoch"),
        ("1,5", r"epoch 5 is beyond the end of the run, whose last complete epoch is 3"),
    ],
)
def test_bad_snapshot_epochs_are_refused_when_parsed(value: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        PretrainingArguments(output_dir=str(tmp_path), num_train_epochs=3.5, snapshot_epochs=value)


def test_snapshot_beyond_max_steps_is_refused_before_training(cifar10_path: Path, tmp_path: Path) -> None:
    args = PretrainingArguments(output_dir=str(tmp_path / "run"), max_steps=6, snapshot_epochs="2,3", **TINY)
    with pytest.raises(
        ValueError, match="epoch 3 is beyond the end of the run, whose last complete epoch is 2"
    ):
        pretrain(FAST_MODEL, tiny_data(cifar10_path), args)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_snapshot_epochs_parse() -> None:
    assert parse_snapshot_epochs(None) == [] and parse_snapshot_epochs("") == []
    assert parse_snapshot_epochs("100,1, 25,25") == [1, 25, 100]
    assert parse_snapshot_epochs([50, 1]) == [1, 50]


def test_snapshot_curve_evaluates_every_snapshot_on_one_scale(
    cifar10_path: Path, tmp_path: Path, monkeypatch
) -> None:
    output_dir = tmp_path / "run"
    args = PretrainingArguments(output_dir=str(output_dir), num_train_epochs=2, snapshot_epochs="1,2", **TINY)
    pretrain(FAST_MODEL, tiny_data(cifar10_path), args)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    import snapshot_curve

    argv = [
        "snapshot_curve.py",
        "--model_name_or_path",
        str(output_dir),
        "--dataset_name",
        str(cifar10_path),
        "--max_train_samples",
        "60",
        "--max_eval_samples",
        "30",
        "--knn_k",
        "5",
        "--max_iter",
        "20",
        "--device",
        "cpu",
        "--tsne_points",
        "20",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    snapshot_curve.main()
    curve = json.loads((output_dir / "snapshot_curve.json").read_text())
    assert [row["epoch"] for row in curve["rows"]] == [1, 2] and curve["per_class_epoch"] == 2
    assert all(0 <= row["linear_top1"] <= 1 and set(row["knn_top1"]) == {"5"} for row in curve["rows"])
    assert len(curve["per_class"]) == 10 and sum(row["support"] for row in curve["per_class"]) == 30
    for name in ("snapshot_curve.png", "snapshot_tsne.png"):
        assert (output_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (output_dir / "snapshot_curve.md").read_text()
    for row in curve["rows"]:
        assert f"| {row['epoch']} | {100 * row['linear_top1']:.2f} |" in table
    # The curve's last point is the final model's evaluation: the epoch-2 snapshot is the finished encoder.
    from hf_simclr.evaluation.arguments import LinearProbeArguments
    from hf_simclr.evaluation.probe import run_linear_probe

    final = run_linear_probe(
        LinearProbeArguments(
            str(output_dir),
            dataset_name=str(cifar10_path),
            max_train_samples=60,
            max_eval_samples=30,
            knn_k=[5],
            max_iter=20,
            features="h",
            label_fractions=[],
            skip_baseline=True,
            device="cpu",
            output_dir=str(tmp_path / "final"),
        )
    )
    assert (
        final["linear_top1"] == curve["rows"][-1]["linear_top1"]
        and final["knn_top1"] == curve["rows"][-1]["knn_top1"]
    )
