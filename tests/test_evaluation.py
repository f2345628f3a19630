"""The evaluation: one feature path (h, z), linear probe, kNN, label fractions, the whole run, pictures."""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from builders import CLASSES, colour_images, save_tiny_dataset, save_tiny_model
from PIL import Image
from transformers import AutoImageProcessor, AutoModel

from hf_simclr import SimCLRForPreTraining
from hf_simclr.augmentation import augmentation_preset
from hf_simclr.collective import Processes
from hf_simclr.data import decode_images, load_image_dataset
from hf_simclr.evaluation import features as feature_path
from hf_simclr.evaluation.arguments import LinearProbeArguments
from hf_simclr.evaluation.features import (
    FrozenModel,
    cached_features,
    decode_labeled_split,
    extract_features,
    load_frozen_model,
)
from hf_simclr.evaluation.knn import knn_accuracies, knn_top1
from hf_simclr.evaluation.label_fractions import label_fraction_indices
from hf_simclr.evaluation.linear import fit_linear_probe
from hf_simclr.evaluation.metrics import top_k_accuracy
from hf_simclr.evaluation.probe import run_linear_probe
from hf_simclr.model_folder import load_encoder, save_model_folder
from hf_simclr.pretraining.arguments import PretrainingArguments
from hf_simclr.pretraining.data_arguments import DataArguments
from hf_simclr.pretraining.loop import pretrain
from hf_simclr.pretraining.model_arguments import ModelArguments
from hf_simclr.pretraining.monitor import build_knn_monitor
from hf_simclr.reports.plots import (
    plot_confusion_matrix,
    plot_training_curves,
    plot_tsne,
    read_log_history,
    write_probe_plots,
)
from hf_simclr.reports.tables import format_results_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def probed(tiny_probe):
    """The shared probe run of the tiny model (`tiny_probe` in conftest.py)."""
    return tiny_probe


# ----------------------------------------------------------------------------------------------
# Linear probe
# ----------------------------------------------------------------------------------------------


def separable_features(count: int, dim: int = 32, classes: int = 5, seed: int = 0):
    """Points labeled by a random linear teacher, keeping only those with a margin of at least 4."""
    generator = torch.Generator().manual_seed(seed)
    teacher = torch.randn(classes, dim, generator=generator)
    h = torch.randn(4 * count, dim, generator=generator) * 3 + 2  # not centred, not unit scale
    scores = (h - 2) @ teacher.T
    top2 = scores.topk(2, dim=1).values
    keep = (top2[:, 0] - top2[:, 1]) > 4.0
    return h[keep][:count], scores[keep][:count].argmax(dim=1)


def test_linear_probe_separates_linearly_separable_features():
    h, y = separable_features(3000)
    train_h, train_y, test_h, test_y = h[:2000], y[:2000], h[2000:], y[2000:]
    fitted = fit_linear_probe(train_h, train_y, 5, weight_decays=(1e-5, 1e-3, 1e-1), seed=0, max_iter=200)
    assert top_k_accuracy(fitted.logits(train_h), train_y, 1) >= 0.99
    assert top_k_accuracy(fitted.logits(test_h), test_y, 1) >= 0.99
    assert set(fitted.holdout_top1) == {1e-5, 1e-3, 1e-1}


def test_the_probe_picks_the_weight_decay_that_generalises():
    # Two classes, 80/20, shifted apart along one axis: a penalty of 1e4 leaves the probe only its bias (it
    # predicts the majority class), 1e-4 separates them; the answer is known without the selection rule.
    generator = torch.Generator().manual_seed(0)
    y = (torch.rand(1000, generator=generator) < 0.2).long()
    h = torch.randn(1000, 8, generator=generator)
    h[:, 0] += 3 * y.float()
    fitted = fit_linear_probe(h, y, 2, weight_decays=(1e-4, 1e4), seed=0, max_iter=100)
    assert fitted.weight_decay == 1e-4
    assert fitted.holdout_top1[1e-4] > 0.9 > fitted.holdout_top1[1e4]


def test_linear_probe_is_deterministic_and_standardises():
    h, y = separable_features(400, seed=1)
    first = fit_linear_probe(h, y, 5, seed=3, max_iter=50)
    second = fit_linear_probe(h, y, 5, seed=3, max_iter=50)
    assert torch.equal(first.weight, second.weight)
    assert torch.allclose(first.mean, h.mean(dim=0))
    # A constant feature (a dead ReLU) gets std 1, so it neither divides by zero nor matters.
    h[:, 0] = 7.0
    fitted = fit_linear_probe(h, y, 5, weight_decays=(1e-4,), max_iter=50)
    assert fitted.std[0] == 1.0 and torch.isfinite(fitted.logits(h)).all()


def test_top_k_accuracy_caps_k_at_the_class_count():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    assert top_k_accuracy(logits, torch.tensor([0, 0]), 1) == 0.5
    assert top_k_accuracy(logits, torch.tensor([0, 0]), 5) == 1.0


# ----------------------------------------------------------------------------------------------
# kNN
# ----------------------------------------------------------------------------------------------


def naive_knn_top1(train_h, train_y, query_h, query_y, k, temperature, num_classes):
    """Reference: one query at a time, written from the InstDisc weighted-vote description."""
    correct = 0
    for query, label in zip(query_h, query_y, strict=True):
        similarity = F.normalize(train_h, dim=1) @ F.normalize(query, dim=0)
        order = similarity.argsort(descending=True)[:k]
        votes = [0.0] * num_classes
        for index in order.tolist():
            votes[int(train_y[index])] += math.exp(similarity[index].item() / temperature)
        correct += int(max(range(num_classes), key=votes.__getitem__) == int(label))
    return correct / len(query_y)


def test_knn_on_clustered_features():
    generator = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(4, 64, generator=generator), dim=1) * 10
    train_y = torch.arange(400) % 4
    query_y = torch.arange(100) % 4
    train_h = centres[train_y] + torch.randn(400, 64, generator=generator)
    query_h = centres[query_y] + torch.randn(100, 64, generator=generator)
    assert knn_top1(train_h, train_y, query_h, query_y, k=10) == 1.0
    shuffled = train_y[torch.randperm(400, generator=generator)]
    assert knn_top1(train_h, shuffled, query_h, query_y, k=10) < 0.6  # labels carry no signal


def test_knn_matches_the_naive_loop_for_every_k_and_chunk_size():
    generator = torch.Generator().manual_seed(1)
    train_h, query_h = torch.randn(60, 8, generator=generator), torch.randn(25, 8, generator=generator)
    train_y, query_y = (
        torch.randint(0, 3, (60,), generator=generator),
        torch.randint(0, 3, (25,), generator=generator),
    )
    expected = {k: naive_knn_top1(train_h, train_y, query_h, query_y, k, 0.1, 3) for k in (1, 5, 20)}
    for chunk_size in (None, 1, 7):
        got = knn_accuracies(train_h, train_y, query_h, query_y, ks=(1, 5, 20), chunk_size=chunk_size)
        assert got == pytest.approx(expected)
    # k above the number of training points uses them all; scale of h does not matter (cosine).
    assert knn_top1(train_h * 5, train_y, query_h, query_y, k=1000) == pytest.approx(
        naive_knn_top1(train_h, train_y, query_h, query_y, 60, 0.1, 3)
    )


def test_knn_votes_are_weighted_by_exp_similarity_over_temperature():
    # One very close neighbour of class 0 against two farther ones of class 1: the exponential
    # weights at temperature 0.1 let the close one win, plain majority (huge temperature) does not.
    train_h = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    train_y = torch.tensor([0, 1, 1])
    query_h, query_y = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    assert knn_top1(train_h, train_y, query_h, query_y, k=3, temperature=0.1) == 1.0
    assert knn_top1(train_h, train_y, query_h, query_y, k=3, temperature=1e4) == 0.0


# ----------------------------------------------------------------------------------------------
# Label fractions
# ----------------------------------------------------------------------------------------------


def test_label_fractions_are_class_balanced_seeded_and_nested():
    labels = torch.tensor([0] * 100 + [1] * 50 + [2] * 200)[
        torch.randperm(350, generator=torch.Generator().manual_seed(0))
    ]
    subset = label_fraction_indices(labels, 0.1, seed=0)
    assert torch.bincount(labels[subset]).tolist() == [10, 5, 20]
    assert len(set(subset.tolist())) == len(subset)
    assert torch.equal(subset, label_fraction_indices(labels, 0.1, seed=0))
    assert not torch.equal(subset, label_fraction_indices(labels, 0.1, seed=1))
    larger = label_fraction_indices(labels, 0.5, seed=0)
    assert set(subset.tolist()) <= set(larger.tolist())
    assert len(label_fraction_indices(labels, 1.0)) == 350


def test_label_fraction_that_empties_a_class_names_it():
    labels = torch.tensor([0] * 100 + [1] * 30)
    with pytest.raises(ValueError, match=r"label fraction 0.01 leaves class 'cat' \(label 1, 30 training"):
        label_fraction_indices(labels, 0.01, names=["dog", "cat"])
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\]"):
        label_fraction_indices(labels, 0.0)
    with pytest.raises(ValueError, match=r"--label_fractions \[2.0\] must be fractions in \(0, 1\]"):
        LinearProbeArguments(model_name_or_path="m", dataset_name="d", label_fractions=[2.0])


# ----------------------------------------------------------------------------------------------
# The whole run
# ----------------------------------------------------------------------------------------------


def test_results_json_holds_every_number(probed):
    args, results, model_dir = probed
    written = json.loads((model_dir / "results.json").read_text())
    assert written == json.loads(json.dumps(results, default=str))
    for key in ("linear_top1", "linear_top5"):
        assert 0.0 <= written[key] <= 1.0
    assert set(written["knn_top1"]) == {"3", "200"}
    assert set(written["label_fraction"]) == {"0.25", "0.5"}
    assert written["label_fraction"]["0.25"]["num_train_samples"] == 9  # 3 of each class's 12
    baseline = written["random_init_baseline"]
    assert {"linear_top1", "knn_top1"} <= set(baseline) and set(baseline["knn_top1"]) == {"3", "200"}
    assert [row["name"] for row in written["per_class"]] == CLASSES
    assert {"precision", "recall", "f1", "support"} <= set(written["per_class"][0])
    assert sum(row["support"] for row in written["per_class"]) == 12
    assert np.asarray(written["confusion_matrix"]).shape == (3, 3)
    assert np.asarray(written["confusion_matrix"]).sum() == 12
    assert written["model_config"]["model_type"] == "simclr"
    assert written["dataset"]["name"] == args.dataset_name and written["dataset"]["eval_split"] == "test"
    assert written["split_sizes"] == {"train": 36, "eval": 12}
    assert written["seed"] == 0 and written["model_name_or_path"] == str(model_dir)
    assert written["eval_view"]["image_size"] == 32
    # Colour classes are easy: even 36 images give a probe far above chance (1/3).
    assert written["linear_top1"] >= 0.9 and written["knn_top1"]["3"] >= 0.9
    table = format_results_table(written)
    assert "Linear probe top-1" in table and f"{100 * written['linear_top1']:.2f}" in table


def test_probe_writes_pictures_and_a_card_into_the_model_folder(probed):
    _, results, model_dir = probed
    assert set(results["plots"]) == {"tsne", "nearest_neighbors", "confusion_matrix", "training_curves"}
    for file in results["plots"].values():
        assert (model_dir / file).read_bytes()[:8] == PNG_MAGIC
    assert (model_dir / "README.md").is_file()  # output_dir defaulted to the model folder
    assert sorted(path.name for path in (model_dir / "feature_cache").iterdir()) == [
        "features_model_eval.safetensors",
        "features_model_train.safetensors",
        "features_random_init_eval.safetensors",
        "features_random_init_train.safetensors",
    ]


def test_features_are_cached_and_recomputed_when_the_inputs_change(probed, tmp_path, monkeypatch):
    args, _, model_dir = probed
    model = load_frozen_model(model_dir)
    dataset = load_image_dataset(args.dataset_name, split="test")
    split = decode_labeled_split(dataset, 32)
    cache = tmp_path / "features.safetensors"
    features = cached_features(cache, model, split, "cpu", batch_size=8)
    assert features["h"].shape == (12, 512) and features["z"].shape == (12, 128)
    assert features["y"].tolist() == [0] * 4 + [1] * 4 + [2] * 4

    def fail(*args, **kwargs):
        raise AssertionError("features should have come from the cache")

    with monkeypatch.context() as patch:
        patch.setattr(feature_path, "extract_features", fail)  # where cached_features calls it
        cached = cached_features(cache, model, split, "cpu", batch_size=8)
    assert torch.equal(cached["h"], features["h"]) and torch.equal(cached["z"], features["z"])
    other = cached_features(cache, model, decode_labeled_split(dataset.select(range(6)), 32), "cpu")
    assert other["h"].shape == (6, 512)
    assert torch.allclose(other["h"], features["h"][:6], atol=1e-5)

    # Other weights, same data and file: the key holds the weights' fingerprint, so the cache is not reused.
    changed = FrozenModel(
        copy.deepcopy(model.encoder), copy.deepcopy(model.projection_head), model.view, model.config
    )
    with torch.no_grad():
        next(changed.encoder.parameters()).mul_(1.5)
    cached_features(cache, model, split, "cpu", batch_size=8)  # the cache holds the original model's again
    recomputed = cached_features(cache, changed, split, "cpu", batch_size=8)
    assert not torch.allclose(recomputed["h"], features["h"], atol=1e-3)
    direct = extract_features(changed.encoder, split.images, model.view, "cpu", 8, changed.projection_head)
    assert torch.equal(recomputed["h"], direct["h"].cpu())


@pytest.mark.slow  # the whole script, end to end
def test_script_runs_from_the_command_line(probed, tmp_path, monkeypatch, capsys):
    args, results, model_dir = probed
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    import linear_probe

    output_dir = tmp_path / "out"
    argv = ["linear_probe.py", "--model_name_or_path", str(model_dir), "--dataset_name", args.dataset_name]
    argv += ["--output_dir", str(output_dir), "--knn_k", "3", "--max_iter", "100"]
    argv += ["--label_fractions", "0.5", "--skip_baseline", "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", argv)
    linear_probe.main()
    written = json.loads((output_dir / "results.json").read_text())
    assert written["random_init_baseline"] is None and set(written["knn_top1"]) == {"3"}
    assert written["linear_top1"] == results["linear_top1"]  # same features, same deterministic probe
    assert not (output_dir / "README.md").exists()  # not the model folder: no card
    assert "kNN top-1 (k=3)" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# One feature path: h and z, the image processor's view, the kNN monitor
# ----------------------------------------------------------------------------------------------


def image_rows(images: list[Image.Image]) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"image": images}, features=datasets.Features({"image": datasets.Image()})
    )


def test_the_one_extractor_gives_h_and_z_of_the_models_on_the_processors_output(probed):
    _, _, model_dir = probed
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for h, w in ((40, 64), (64, 40), (33, 50))
    ]
    images.append(images[0].convert("L"))
    model = load_frozen_model(model_dir)
    decoded = decode_images(image_rows(images), 32)
    features = extract_features(model.encoder, decoded, model.view, "cpu", 2, model.projection_head)

    processor = AutoImageProcessor.from_pretrained(model_dir)
    pretraining = SimCLRForPreTraining.from_pretrained(model_dir).eval()
    with torch.no_grad():
        h = AutoModel.from_pretrained(model_dir).eval()(**processor(images=images)).pooler_output
        z = pretraining.projection_head(h)
    torch.testing.assert_close(features["h"], h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features["z"], z, atol=1e-5, rtol=1e-5)
    assert pretraining.training is False and model.encoder.training is False  # modes restored: eval


def test_probe_records_z_beside_the_headline_on_h(probed):
    _, results, _ = probed
    assert results["features"] == ["h", "z"]
    z = results["z"]
    assert z["feature_dim"] == 128 and results["feature_dim"] == 512
    assert {"linear_top1", "linear_top3", "linear_top5", "knn_top1", "weight_decay"} <= set(z)
    assert 0.0 <= z["linear_top1"] <= 1.0 and set(z["knn_top1"]) == {"3", "200"}
    assert set(results["timings_seconds"]) >= {"decode", "features", "probe", "label_fractions"}


def test_z_needs_a_projection_head(probed, tmp_path, monkeypatch):
    args, _, model_dir = probed
    encoder_only = tmp_path / "encoder"
    save_model_folder(load_encoder(model_dir), encoder_only, augmentation_preset("cifar10"))

    def fail(*args, **kwargs):
        raise AssertionError("the error must come before any image is encoded")

    common = dict(
        dataset_name=args.dataset_name,
        output_dir=str(tmp_path / "out"),
        max_iter=20,
        skip_baseline=True,
        label_fractions=[0.5],
        device="cpu",
    )
    with monkeypatch.context() as patch:
        patch.setattr(feature_path, "extract_features", fail)  # where cached_features calls it
        with pytest.raises(ValueError, match="--features z: the model folder holds the encoder only"):
            run_linear_probe(LinearProbeArguments(str(encoder_only), features="z", **common))
    results = run_linear_probe(LinearProbeArguments(str(encoder_only), **common))
    assert (
        results["features"] == ["h"] and results["z"] is None and "no projection head" in results["z_skipped"]
    )
    assert "z not probed" in format_results_table(results)


def test_a_label_fraction_that_would_empty_a_class_is_skipped_and_the_rest_completes(probed, tmp_path):
    args, _, model_dir = probed
    results = run_linear_probe(
        LinearProbeArguments(
            str(model_dir),
            dataset_name=args.dataset_name,
            output_dir=str(tmp_path),
            features="h",
            label_fractions=[0.01, 0.5],
            skip_baseline=True,
            max_iter=20,
            device="cpu",
        )
    )
    assert set(results["label_fraction"]) == {"0.5"}
    assert "leaves class 'red'" in results["label_fraction_skipped"]["0.01"]
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["label_fraction_skipped"] == results["label_fraction_skipped"]
    assert written["linear_top1"] is not None and written["per_class"]


def test_knn_monitor_memory_follows_the_training_subset_and_matches_the_probe(cifar10_path, tmp_path):
    data = DataArguments(dataset_name=str(cifar10_path), max_train_samples=64, image_size=16)
    train_set = data.load_split("train_split", 64, seed=0)
    queries = data.load_split("eval_split", 64, seed=0, require_labels=True)
    monitor = build_knn_monitor(Processes(), data, train_set, queries, None, data.augmentation(), k=10)
    assert monitor.sizes == (64, 64)  # not 50,000 / 10,000: a tiny run gets a tiny monitor

    output_dir = tmp_path / "run"
    data.max_eval_samples = 48
    pretrain(
        ModelArguments(),
        data,
        PretrainingArguments(
            output_dir=str(output_dir),
            max_steps=4,
            per_device_train_batch_size=32,
            knn_every_epochs=1,
            report_to="none",
            seed=0,
            warmup_epochs=0,
        ),
    )
    knn_records = [
        record for record in read_log_history(output_dir / "log_history.jsonl") if "knn_top1" in record
    ]
    assert len(knn_records) == 2 and all(record["knn_seconds"] >= 0 for record in knn_records)
    results = run_linear_probe(
        LinearProbeArguments(
            str(output_dir),
            dataset_name=str(cifar10_path),
            max_train_samples=64,
            max_eval_samples=48,
            knn_k=[10],
            features="h",
            label_fractions=[],
            skip_baseline=True,
            max_iter=5,
            device="cpu",
            write_card=False,
        )
    )
    # The monitor at the last step and the evaluation of the saved folder: the same features.
    assert results["knn_top1"]["10"] == pytest.approx(knn_records[-1]["knn_top1"], abs=1e-4)


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def test_folder_that_is_not_a_simclr_model_is_refused(tmp_path):
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text(json.dumps({"model_type": "vit"}))
    for folder, message in ((tmp_path / "vit", "holds a 'vit' model"), (tmp_path, "no config.json found")):
        args = LinearProbeArguments(
            model_name_or_path=str(folder), dataset_name="unused", output_dir=str(tmp_path)
        )
        with pytest.raises(ValueError, match=message):
            run_linear_probe(args)


def test_dataset_without_labels_is_refused(tmp_path):
    model_dir = save_tiny_model(tmp_path / "model", log_history=False)
    data_dir = save_tiny_dataset(tmp_path / "unlabeled", per_class=(2, 1), labeled=False)
    args = LinearProbeArguments(model_name_or_path=str(model_dir), dataset_name=str(data_dir))
    with pytest.raises(ValueError, match="has no label column"):
        run_linear_probe(args)
    assert not (model_dir / "results.json").exists()


# ----------------------------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------------------------


def test_plots_write_png_files(tmp_path):
    generator = torch.Generator().manual_seed(0)
    h, y = torch.randn(40, 16, generator=generator), torch.arange(40) % 3
    assert plot_tsne(h, y, CLASSES, tmp_path / "tsne.png", max_points=30).read_bytes()[:8] == PNG_MAGIC
    matrix = [[5, 1, 0], [0, 6, 0], [2, 0, 4]]
    assert plot_confusion_matrix(matrix, CLASSES, tmp_path / "cm.png").read_bytes()[:8] == PNG_MAGIC
    log = tmp_path / "log_history.jsonl"
    log.write_text(json.dumps({"step": 1, "epoch": 0.5, "loss": 4.0}) + "\n\n")  # no kNN line: panel says so
    assert plot_training_curves(log, tmp_path / "curves.png").read_bytes()[:8] == PNG_MAGIC


def test_training_curves_are_skipped_with_a_note_without_a_log(tmp_path):
    model_dir = save_tiny_model(tmp_path / "model", log_history=False)
    images = colour_images([0, 1, 2, 0], seed=0)
    h, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    written = write_probe_plots(tmp_path / "out", model_dir, images, images, h, h, y, CLASSES, [[1] * 3] * 3)
    assert (
        written["training_curves"].startswith("skipped") and "log_history.jsonl" in written["training_curves"]
    )
    assert {path.name for path in (tmp_path / "out").iterdir()} == {
        "tsne.png",
        "nearest_neighbors.png",
        "confusion_matrix.png",
    }


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_knn_and_probe_on_gpu_match_cpu():
    h, y = separable_features(1000, seed=2)
    cpu = knn_accuracies(h[:800], y[:800], h[800:], y[800:], ks=(1, 10))
    gpu = knn_accuracies(h[:800].cuda(), y[:800].cuda(), h[800:], y[800:], ks=(1, 10))
    assert gpu == pytest.approx(cpu, abs=1 / 200)
    fitted = fit_linear_probe(h[:800].cuda(), y[:800].cuda(), 5, max_iter=100)
    assert fitted.weight.is_cuda and top_k_accuracy(fitted.logits(h[800:]), y[800:]) >= 0.97
