"""The pretraining loop: a real short run, exact resume, two processes, the STL-10 path, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModel

from hf_simclr import SimCLRModel
from hf_simclr.arguments import UsageError, recipe_arguments
from hf_simclr.folder_format import RESUME_SETTINGS_FILE
from hf_simclr.pretraining.arguments import PretrainingArguments
from hf_simclr.pretraining.checkpoints import list_checkpoints
from hf_simclr.pretraining.data_arguments import DataArguments
from hf_simclr.pretraining.loop import pretrain
from hf_simclr.pretraining.model_arguments import ModelArguments

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pretrain.py"
# Views without randomness: every process (and every run) sees the same pixels for the same image.
NO_AUGMENTATION = dict(
    crop_scale_min=1.0,
    crop_scale_max=1.0,
    horizontal_flip_p=0.0,
    color_jitter_p=0.0,
    grayscale_p=0.0,
    blur_p=0.0,
)


def read_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "log_history.jsonl").read_text().splitlines()]


def run(
    output_dir: Path, dataset: Path, *, model: dict | None = None, data: dict | None = None, **train
) -> dict:
    model_args = ModelArguments(**(model or {}))
    data_args = DataArguments(dataset_name=str(dataset), **(data or {}))
    defaults = dict(report_to="none", knn_every_epochs=0, logging_steps=1, warmup_epochs=0, seed=0)
    train_args = PretrainingArguments(output_dir=str(output_dir), **{**defaults, **train})
    return pretrain(model_args, data_args, train_args)


@pytest.mark.parametrize(
    ("augment_on", "chunk_size", "keep_decoded_on"),
    [("gpu", None, "auto"), ("cpu", None, "auto"), ("gpu", 4, "auto"), ("gpu", None, "host")],
    ids=["gpu", "cpu", "gpu-chunks", "gpu-streamed"],
)
def test_resume_gives_the_same_weights(
    cifar10_path: Path, tmp_path: Path, augment_on: str, chunk_size: int | None, keep_decoded_on: str, capsys
) -> None:
    # Both ways of making views: the seeded per-step draw on the device, and the DataLoader (its sampler's
    # epoch, skipped batches and the RNG states that save_state keeps); cached-gradient chunks (BatchNorm's
    # running statistics updated once per chunk); and the device's views streamed from the memory-mapped cache
    # (the gather thread started again at the resumed step).
    data = {"max_train_samples": 96, "image_size": 16, "augment_on": augment_on, "dataloader_num_workers": 0}
    if keep_decoded_on == "host":
        data.update(keep_decoded_on="host", decoded_cache_dir=str(tmp_path / "decoded"))
    settings = dict(
        data=data,
        chunk_size=chunk_size,
        per_device_train_batch_size=16,
        max_steps=8,
        checkpointing_steps="3",
        checkpoints_total_limit=3,
    )
    full = tmp_path / "full"
    run(full, cifar10_path, **settings)
    headline = "global batch 16 (16 in chunks of 4 x 1 processes)" if chunk_size else "(16 x 1 processes)"
    console = capsys.readouterr().out
    assert headline in console
    assert ("from the decoded split streamed from" in console) == (keep_decoded_on == "host")
    interrupted = tmp_path / "interrupted"
    (interrupted / "checkpoints").mkdir(parents=True)
    # The state a run killed after step 3 leaves behind: its step-3 checkpoint and nothing else.
    shutil.copytree(full / "checkpoints" / "step_3", interrupted / "checkpoints" / "step_3")
    summary = run(interrupted, cifar10_path, resume_from_checkpoint="latest", **settings)
    assert summary["steps"] == 8
    expected = AutoModel.from_pretrained(full).state_dict()
    resumed = AutoModel.from_pretrained(interrupted).state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(resumed[key], value, atol=1e-6, rtol=0, msg=key)
    assert [r["loss"] for r in read_log(interrupted)] == pytest.approx(
        [r["loss"] for r in read_log(full)][3:]
    )


def test_a_new_run_never_mixes_with_an_earlier_run_in_its_folder(cifar10_path: Path, tmp_path: Path) -> None:
    # Before: the second run's checkpoints were pruned as soon as written (the first run's steps sort
    # higher), and a resume then continued the first run under the second run's training_args.json.
    data = {"max_train_samples": 32, "image_size": 16}
    run(
        tmp_path, cifar10_path, data=data, per_device_train_batch_size=8, max_steps=4, checkpointing_steps="2"
    )
    first_weights = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "results.json").write_text("{}")  # the first model's probe results
    second = dict(data=data, per_device_train_batch_size=16, max_steps=2, checkpointing_steps="1")
    with pytest.raises(
        ValueError,
        match=r"holds another run \(.*checkpoints.*\)\. Continue it with "
        r"--resume_from_checkpoint latest, .* --overwrite_output_dir",
    ):
        run(tmp_path, cifar10_path, **second)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["step_2", "step_4"]  # left alone
    with pytest.raises(ValueError, match="give one of them"):
        PretrainingArguments(
            output_dir=str(tmp_path), overwrite_output_dir=True, resume_from_checkpoint="latest"
        )

    run(tmp_path, cifar10_path, overwrite_output_dir=True, **second)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["step_1", "step_2"]
    assert not (tmp_path / "results.json").exists()
    second_weights = (tmp_path / "model.safetensors").read_bytes()
    assert second_weights != first_weights
    assert json.loads((tmp_path / "training_args.json").read_text())["global_batch_size"] == 16
    assert [record["step"] for record in read_log(tmp_path)] == [1, 2]
    # A resume continues the folder's own run: the second one.
    run(tmp_path, cifar10_path, resume_from_checkpoint="latest", **second)
    assert (tmp_path / "model.safetensors").read_bytes() == second_weights


RESUMABLE = dict(
    data={"max_train_samples": 32, "image_size": 16},
    per_device_train_batch_size=16,
    max_steps=4,
    checkpointing_steps="1",
    checkpoints_total_limit=3,
)


@pytest.fixture(scope="module")
def interrupted_run(cifar10_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run stopped after 2 of its 4 steps: its output folder with the step-2 checkpoint."""
    folder = tmp_path_factory.mktemp("interrupted")
    run(folder, cifar10_path, **RESUMABLE)
    for late in ("step_3", "step_4"):
        shutil.rmtree(folder / "checkpoints" / late)
    (folder / "model.safetensors").unlink()  # as if killed after step 2
    return folder


@pytest.mark.parametrize(
    "change, match",
    [
        (
            {"per_device_train_batch_size": 8},
            r"global_batch_size: 16 in the checkpoint, 8 now \(--per_device_train_batch_size x processes\)",
        ),
        (
            {"data": {"max_train_samples": 48, "image_size": 16}},
            r"num_train_samples: 32 in the checkpoint, 48 now",
        ),
        ({"seed": 1}, r"dataset_identity: '\w+' in the checkpoint, '\w+' now \(.*--seed\)"),
        ({"optimizer": "adamw"}, r"optimizer: 'lars' in the checkpoint, 'adamw' now \(--optimizer\)"),
        ({"max_steps": 6}, r"total_steps: 4 in the checkpoint, 6 now"),
        (
            {"model": {"projection_dim": 64}},
            r"projection_dim: 128 in the checkpoint, 64 now \(--projection_dim\)",
        ),
        ({"objective": "sogclr"}, r"objective: 'nt_xent' in the checkpoint, 'sogclr' now \(--objective\)"),
    ],
)
def test_resume_refuses_other_settings_naming_them(
    cifar10_path: Path, interrupted_run: Path, change: dict, match: str
) -> None:
    # Before: another batch size or data size was accepted (the epoch went backwards, the schedule
    # jumped), another optimizer crashed with KeyError: 'step', another head with a raw size mismatch.
    with pytest.raises(ValueError, match=r"Cannot resume from .*step_2: this run's settings differ") as error:
        run(interrupted_run, cifar10_path, resume_from_checkpoint="latest", **{**RESUMABLE, **change})
    assert re.search(match, str(error.value)), str(error.value)


def test_resume_from_a_checkpoint_without_settings_warns(
    cifar10_path: Path, interrupted_run: Path, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(interrupted_run, tmp_path / "old"))
    (folder / "checkpoints" / "step_2" / RESUME_SETTINGS_FILE).unlink()  # written by an earlier version
    with pytest.warns(UserWarning, match="predates them.*this resume is unchecked"):
        summary = run(folder, cifar10_path, resume_from_checkpoint="latest", **RESUMABLE)
    assert summary["steps"] == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# GroupNorm and no BN in the head: CPU has no SyncBatchNorm, and per-process BN statistics would differ
# from the single process's; the negatives, gathered across processes, are what is tested. SGD without
# momentum: the weights after the step are the gradient's image.
ONE_STEP = [
    "--max_train_samples",
    "64",
    "--image_size",
    "16",
    "--backbone_kwargs",
    '{"norm_layer": "groupnorm"}',
    "--projection_batch_norm",
    "false",
    "--max_steps",
    "1",
    "--logging_steps",
    "1",
    "--report_to",
    "none",
    "--knn_every_epochs",
    "0",
    "--warmup_epochs",
    "0",
    "--seed",
    "0",
    "--optimizer",
    "sgd",
    "--momentum",
    "0",
    "--learning_rate",
    "10",
]
ONE_STEP += [item for key, value in NO_AUGMENTATION.items() for item in (f"--{key}", str(value))]


@pytest.fixture(scope="module")
def one_process(cifar10_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One step of one process with the global batch of 16."""
    folder = tmp_path_factory.mktemp("one") / "run"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--dataset_name",
        str(cifar10_path),
        *ONE_STEP,
        "--per_device_train_batch_size",
        "16",
        "--output_dir",
        str(folder),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def torchrun(*options: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *options]


@pytest.mark.parametrize("machines", [1, 2], ids=["two-processes", "two-machines-on-loopback"])
def test_two_processes_take_the_step_of_one_process_with_the_global_batch(
    cifar10_path: Path, tmp_path: Path, one_process: Path, machines: int
) -> None:
    # Two processes on one machine (torchrun --nproc_per_node 2), or one on each of two "machines" (two torchrun
    # nodes meeting on loopback, as two hosts would), each with half of the global batch. The processes decode
    # their shares of the split into one cache file, and the main process alone its kNN monitor's (which the
    # others would wait for forever had it decoded as a collective).
    port, folder = str(_free_port()), tmp_path / "run"
    script = [
        str(SCRIPT),
        "--dataset_name",
        str(cifar10_path),
        *ONE_STEP,
        "--per_device_train_batch_size",
        "8",
        "--output_dir",
        str(folder),
        "--decoded_cache_dir",
        str(tmp_path / "decoded"),
        "--knn_every_epochs",
        "1",
    ]
    if machines == 1:
        commands = [torchrun("--nproc_per_node", "2", "--master_port", port, *script)]
    else:
        commands = [
            torchrun(
                "--nnodes",
                "2",
                "--nproc_per_node",
                "1",
                "--node_rank",
                str(rank),
                "--master_addr",
                "127.0.0.1",
                "--master_port",
                port,
                *script,
            )
            for rank in (0, 1)
        ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        for cmd in commands
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    args = json.loads((folder / "training_args.json").read_text())
    assert args["num_processes"] == 2 and args["global_batch_size"] == 16
    assert len(list((tmp_path / "decoded").glob("*.npy"))) == 2  # the training split, the monitor's queries
    assert read_log(folder)[0]["loss"] == pytest.approx(read_log(one_process)[0]["loss"], abs=1e-5)
    expected, got = (load_file(path / "model.safetensors") for path in (one_process, folder))
    for name, value in expected.items():  # one SGD step: equal weights, equal gradients
        torch.testing.assert_close(got[name], value, atol=2e-5, rtol=1e-4, msg=name)


def make_stl10_parquet(folder: Path) -> Path:
    """A tiny dataset with STL-10's layout: 96px `image`, `label` (-1 in the unlabeled split)."""
    import datasets

    rng = np.random.default_rng(0)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    for split, n, labeled in (("train", 8, True), ("unlabeled", 24, False), ("test", 8, True)):
        images = [Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) for _ in range(n)]
        labels = [int(i % 10) if labeled else -1 for i in range(n)]
        ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


@pytest.mark.parametrize("augment_on", ["gpu", "cpu"])
def test_stl10_path_96px_unlabeled_with_blur(tmp_path: Path, augment_on: str) -> None:
    dataset = make_stl10_parquet(tmp_path / "stl10")
    # 32 images in batches of 8: the 4 steps make one epoch, whose end runs the kNN monitor (memory: the
    # 8 labeled rows; STL-10's unlabeled rows, label -1, are dropped; queries: the 8 test images).
    run(
        tmp_path / "out",
        dataset,
        data={
            "preset": "stl10",
            "train_split": "train+unlabeled",
            "augment_on": augment_on,
            "dataloader_num_workers": 0,
        },
        per_device_train_batch_size=8,
        max_steps=4,
        knn_every_epochs=1,
    )
    knn = [record for record in read_log(tmp_path / "out") if "knn_top1" in record]
    assert len(knn) == 1 and knn[0]["step"] == 4 and knn[0]["epoch"] == 1 and 0 <= knn[0]["knn_top1"] <= 1
    args = json.loads((tmp_path / "out" / "training_args.json").read_text())
    assert args["augmentation"]["image_size"] == 96 and args["augmentation"]["blur_p"] == 0.5
    model = AutoModel.from_pretrained(tmp_path / "out")
    assert not model.config.cifar_stem and model.config.image_size == 96


@pytest.mark.parametrize(
    "data, train, match",
    [
        ({"image_column": "picture"}, {}, "picture"),
        ({"preset": "mnist"}, {}, "preset"),
        (
            {"max_train_samples": 20},
            {"per_device_train_batch_size": 32},
            "larger than the 20 training images",
        ),
        ({"train_split": "validation"}, {}, "validation"),
    ],
)
def test_bad_input_gives_clear_errors(
    cifar10_path: Path, tmp_path: Path, data: dict, train: dict, match: str
):
    with pytest.raises(ValueError, match=match):
        run(tmp_path, cifar10_path, data=data, **{"max_steps": 1, **train})


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        PretrainingArguments(output_dir="x", optimizer="rmsprop")
    with pytest.raises(ValueError, match="hub_model_id"):
        PretrainingArguments(output_dir="x", push_to_hub=True)
    with pytest.raises(ValueError, match="'org/not valid' is not a Hub repository id"):
        PretrainingArguments(output_dir="x", push_to_hub=True, hub_model_id="org/not valid")


REQUIRED = {
    ModelArguments: {},
    DataArguments: {"dataset_name": "x"},
    PretrainingArguments: {"output_dir": "x"},
}


@pytest.mark.parametrize(
    "arguments, values, match",
    [
        (
            PretrainingArguments,
            {"num_train_epochs": 0},
            r"--num_train_epochs 0 must be > 0 \(or give --max_steps\)",
        ),
        (PretrainingArguments, {"num_train_epochs": -1}, "--num_train_epochs -1 must be > 0"),
        (PretrainingArguments, {"max_steps": 0}, "--max_steps 0 must be a positive number of steps, or -1"),
        (
            PretrainingArguments,
            {"checkpointing_steps": "0"},
            "--checkpointing_steps 0 must be a positive integer, 'epoch' or 'none'",
        ),
        (PretrainingArguments, {"logging_steps": 0}, "--logging_steps 0 must be a positive integer"),
        (PretrainingArguments, {"per_device_train_batch_size": 0}, "--per_device_train_batch_size 0"),
        (PretrainingArguments, {"learning_rate": float("nan")}, "--learning_rate nan must be > 0"),
        (PretrainingArguments, {"weight_decay": -1e-4}, "--weight_decay -0.0001 must be >= 0"),
        (PretrainingArguments, {"momentum": 1.0}, r"--momentum 1.0 must be in \[0, 1\)"),
        (PretrainingArguments, {"warmup_epochs": -1}, "--warmup_epochs -1 must be >= 0"),
        (PretrainingArguments, {"seed": -1}, "--seed -1"),
        (PretrainingArguments, {"checkpoints_total_limit": -1}, "--checkpoints_total_limit -1"),
        (PretrainingArguments, {"knn_every_epochs": -1}, "--knn_every_epochs -1"),
        (PretrainingArguments, {"knn_k": 0}, "--knn_k 0"),
        (
            DataArguments,
            {"max_train_samples": 0},
            "--max_train_samples 0 must be a positive number of images",
        ),
        (DataArguments, {"max_eval_samples": -5}, "--max_eval_samples -5"),
        (DataArguments, {"dataloader_num_workers": -1}, "--dataloader_num_workers -1"),
        (DataArguments, {"augment_on": "tpu"}, "--augment_on tpu must be gpu, cpu or auto"),
        (DataArguments, {"image_size": 4}, "--image_size 4 must be at least 8 pixels"),
        (DataArguments, {"horizontal_flip_p": 1.5}, "--horizontal_flip_p 1.5 must be a probability in"),
        (
            DataArguments,
            {"crop_scale_min": 0.9, "crop_scale_max": 0.5},
            "--crop_scale_min 0.9 is above --crop_scale_max 0.5",
        ),
        (DataArguments, {"preset": "mnist"}, "--preset mnist is not a preset"),
        (ModelArguments, {"projection_dim": 0}, "--projection_dim 0 must be a positive integer"),
        (ModelArguments, {"loss_temperature": 0.0}, "--loss_temperature 0.0 must be > 0"),
        (
            ModelArguments,
            {"backbone": "vit_tiny_patch16_224", "cifar_stem": True},
            "--cifar_stem true needs a backbone .* Use e.g. --backbone resnet18",
        ),
        (ModelArguments, {"backbone": "no_such_net"}, "--backbone no_such_net is not a timm model"),
        (
            ModelArguments,
            {"backbone_kwargs": "{drop_path_rate: 0.1}"},
            "--backbone_kwargs .* must be a JSON dict",
        ),
    ],
)
def test_numbers_are_checked_when_the_arguments_are_parsed(arguments: type, values: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        parsed = arguments(**REQUIRED[arguments], **values)
        if hasattr(parsed, "check"):  # the checks that build the config or the recipe, run by every parse
            parsed.check()


def test_script_refuses_zero_epochs_before_loading_anything(cifar10_path: Path, tmp_path: Path) -> None:
    # Before: 0 epochs ran "0 steps" and saved a randomly initialised model as if pretrained, exit code 0.
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--dataset_name",
            str(cifar10_path),
            "--output_dir",
            str(tmp_path / "out"),
            "--num_train_epochs",
            "0",
            "--report_to",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "error: --num_train_epochs 0.0 must be > 0" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_script_help_and_recipe_file_with_overrides(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120
    )
    assert (
        result.returncode == 0
        and "linear scaling" not in result.stderr
        and "--learning_rate" in result.stdout
    )
    recipe = Path(__file__).resolve().parents[1] / "configs" / "cifar10-resnet18-reference.yaml"
    argv = recipe_arguments(str(recipe)) + ["--output_dir", str(tmp_path), "--num_train_epochs", "3"]
    from transformers import HfArgumentParser

    parser = HfArgumentParser((ModelArguments, DataArguments, PretrainingArguments))
    model_args, data_args, train_args = parser.parse_args_into_dataclasses(args=argv)
    assert model_args.projection_hidden_dim == 1024 and data_args.augmentation().crop_scale == (0.2, 1.0)
    assert train_args.output_dir == str(tmp_path) and train_args.num_train_epochs == 3


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch, online_hub) -> list[dict]:
    """A token, offline mode off, and HfApi's network calls replaced: the uploads are recorded, not sent."""
    import huggingface_hub

    recorded: list[dict] = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(
        huggingface_hub.HfApi, "upload_folder", lambda self, **kwargs: recorded.append(kwargs)
    )
    return recorded


def test_push_to_hub_after_pretraining_uploads_one_loadable_folder(
    cifar10_path: Path, tmp_path: Path, uploads: list[dict]
) -> None:
    run(
        tmp_path,
        cifar10_path,
        data={"max_train_samples": 32, "image_size": 16},
        per_device_train_batch_size=16,
        max_steps=1,
        push_to_hub=True,
        hub_model_id="org/simclr-test",
    )
    assert len(uploads) == 1 and uploads[0]["repo_id"] == "org/simclr-test"
    folder = Path(uploads[0]["folder_path"])
    assert (folder / "training_args.json").is_file() and not (folder / "results.json").exists()
    assert isinstance(AutoModel.from_pretrained(folder), SimCLRModel)


@pytest.mark.parametrize(
    "problem, match", [("offline", "unset HF_HUB_OFFLINE"), ("no token", "run `hf auth login`")]
)
def test_push_to_hub_problems_stop_the_run_before_it_starts(
    cifar10_path: Path,
    tmp_path: Path,
    uploads: list[dict],
    monkeypatch: pytest.MonkeyPatch,
    problem: str,
    match: str,
) -> None:
    # Before: the whole run trained and saved, and only then failed to push.
    import huggingface_hub

    if problem == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(UsageError, match=match):
        run(
            tmp_path / "out",
            cifar10_path,
            data={"max_train_samples": 32, "image_size": 16},
            per_device_train_batch_size=16,
            max_steps=1,
            push_to_hub=True,
            hub_model_id="org/simclr-test",
        )
    assert not (tmp_path / "out").exists() and uploads == []


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(cifar10_path: Path, tmp_path: Path):
    # Every step is checkpointed; this absurd learning rate spoils the weights within 8 steps (seed 0).
    with pytest.raises(FloatingPointError, match=r"Non-finite (loss at|weights after) step \d+; stopping"):
        run(
            tmp_path,
            cifar10_path,
            data={"max_train_samples": 32, "image_size": 16},
            per_device_train_batch_size=16,
            max_steps=8,
            optimizer="sgd",
            learning_rate=1e8,
            checkpointing_steps="1",
            checkpoints_total_limit=10,
            logging_steps=4,
        )
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints and not any(name.startswith(".tmp") for name in checkpoints)
    for checkpoint in checkpoints:
        from safetensors.torch import load_file

        weights = load_file(tmp_path / "checkpoints" / checkpoint / "model.safetensors")
        assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point()), checkpoint
