"""Safe to interrupt at any moment: each script stopped by Ctrl-C (SIGINT), a scheduler (SIGTERM, SIGUSR1) or a
lost machine (SIGKILL) before the first step, mid-epoch, during decoding, during a checkpoint write, during the
final save, during feature extraction; then the same command again (or the documented resume) finishes the
job. A scheduler's signal inside a training loop finishes the step and checkpoints first. See
tests/interrupt.py for the moments."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from builders import SIX_CLASSES, save_tiny_dataset, save_tiny_model
from transformers import AutoModel

from hf_simclr import SimCLRModel

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
INTERRUPT = Path(__file__).resolve().with_name("interrupt.py")
# 32 images of 16px in batches of 8: 4 steps per epoch, 8 steps, a checkpoint at the end of each epoch.
PRETRAIN = [
    "--image_size",
    "16",
    "--max_train_samples",
    "32",
    "--per_device_train_batch_size",
    "8",
    "--max_steps",
    "8",
    "--knn_every_epochs",
    "0",
    "--report_to",
    "none",
    "--logging_steps",
    "1",
    "--warmup_epochs",
    "0",
    "--backbone_kwargs",
    '{"norm_layer": "groupnorm"}',
]


def run(
    *argv: str, cwd: Path, interrupt: str | None = None, signal: str = "SIGKILL"
) -> subprocess.CompletedProcess:
    prefix = [str(INTERRUPT), interrupt, signal] if interrupt else []
    return subprocess.run(
        [sys.executable, *prefix, *argv], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def pretrain(output_dir: Path, cifar10_path: Path, *extra: str, **interrupt) -> subprocess.CompletedProcess:
    script = str(REPO_ROOT / "scripts" / "pretrain.py")
    return run(
        script,
        "--dataset_name",
        str(cifar10_path),
        "--output_dir",
        str(output_dir),
        *PRETRAIN,
        *extra,
        cwd=output_dir.parent,
        **interrupt,
    )


def finished(output_dir: Path) -> None:
    assert isinstance(AutoModel.from_pretrained(output_dir), SimCLRModel)
    assert not list(output_dir.rglob(".tmp-*")), list(output_dir.rglob(".tmp-*"))


def test_ctrl_c_before_the_first_step_says_what_to_do_and_the_same_command_starts_again(
    cifar10_path, tmp_path
):
    output_dir = tmp_path / "run"
    stopped = pretrain(output_dir, cifar10_path, interrupt="step:1", signal="SIGINT")
    assert stopped.returncode == 130 and "interrupted" in stopped.stderr and "Traceback" not in stopped.stderr
    assert "before the first checkpoint: run the same command again" in stopped.stderr
    again = pretrain(output_dir, cifar10_path)
    assert again.returncode == 0, again.stderr[-3000:]
    finished(output_dir)


def test_killed_mid_epoch_before_any_checkpoint_the_same_command_starts_again(cifar10_path, tmp_path):
    output_dir = tmp_path / "run"
    assert pretrain(output_dir, cifar10_path, interrupt="step:3").returncode != 0
    assert (output_dir / "log_history.jsonl").is_file()  # the interrupted start left its log behind
    again = pretrain(output_dir, cifar10_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "interrupted before its first checkpoint" in again.stdout + again.stderr
    finished(output_dir)


def test_killed_during_a_checkpoint_write_the_resume_continues_from_the_last_complete_one(
    cifar10_path, tmp_path
):
    output_dir = tmp_path / "run"
    assert pretrain(output_dir, cifar10_path, interrupt="checkpoint:2").returncode != 0
    checkpoints = sorted(path.name for path in (output_dir / "checkpoints").iterdir())
    assert checkpoints == [".tmp-step_8", "step_4"]
    refused = pretrain(output_dir, cifar10_path)  # the same command: the folder holds a resumable run
    assert refused.returncode == 2 and "--resume_from_checkpoint latest" in refused.stderr
    resumed = pretrain(output_dir, cifar10_path, "--resume_from_checkpoint", "latest")
    assert resumed.returncode == 0 and "Resumed from" in resumed.stdout, resumed.stderr[-3000:]
    finished(output_dir)


def stopped_by(result: subprocess.CompletedProcess, name: str) -> bool:
    """Exit code 128 + the signal's number, one line saying what to do, no traceback."""
    code = 128 + getattr(signal, name)
    return (
        result.returncode == code
        and f"stopped by {name}" in result.stderr
        and "Traceback" not in result.stderr
    )


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return AutoModel.from_pretrained(folder).state_dict()


@pytest.mark.parametrize("objective", ["nt_xent", "sogclr"])
def test_a_schedulers_sigterm_mid_epoch_checkpoints_the_step_and_the_resume_continues_exactly(
    cifar10_path, tmp_path, objective
):
    # SogCLR: its u (one float per image, updated every step; the second epoch mixes the old estimate in) and
    # the online linear head (its weights and Adam's state) resume bit for bit.
    extra = ("--objective", objective)
    full = tmp_path / "full"
    assert pretrain(full, cifar10_path, *extra).returncode == 0
    output_dir = tmp_path / "run"
    stopped = pretrain(output_dir, cifar10_path, *extra, interrupt="step:3", signal="SIGTERM")
    assert stopped_by(stopped, "SIGTERM"), stopped.stderr[-3000:]
    assert (
        "step_3 after step 3 of 8" in stopped.stderr and "--resume_from_checkpoint latest" in stopped.stderr
    )
    resumed = pretrain(output_dir, cifar10_path, *extra, "--resume_from_checkpoint", "latest")
    assert resumed.returncode == 0 and "at step 3" in resumed.stdout, resumed.stderr[-3000:]
    finished(output_dir)
    expected, got = weights(full), weights(output_dir)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, atol=1e-6, rtol=0, msg=key)
    if objective == "sogclr":
        # the checkpoint's states after the step counter: SogCLR's u, then the online head
        u, head = (
            [
                torch.load(run / "checkpoints" / "step_8" / f"custom_checkpoint_{i}.pkl")
                for run in (full, output_dir)
            ]
            for i in (1, 2)
        )
        assert u[0]["state.u"].shape == (32,) and (u[0]["state.u"] > 0).all()
        assert torch.equal(u[1]["state.u"], u[0]["state.u"])
        for key, value in head[0]["classifier"].items():
            assert torch.equal(head[1]["classifier"][key], value), key


def test_sigusr1_during_a_checkpoint_write_lets_it_finish_and_stops_with_it(cifar10_path, tmp_path):
    output_dir = tmp_path / "run"
    stopped = pretrain(output_dir, cifar10_path, interrupt="checkpoint:1", signal="SIGUSR1")
    assert stopped_by(stopped, "SIGUSR1"), stopped.stderr[-3000:]
    assert sorted(path.name for path in (output_dir / "checkpoints").iterdir()) == ["step_4"]
    resumed = pretrain(output_dir, cifar10_path, "--resume_from_checkpoint", "latest")
    assert resumed.returncode == 0 and "at step 4" in resumed.stdout, resumed.stderr[-3000:]
    finished(output_dir)


def test_sigterm_during_decoding_leaves_no_half_written_cache_and_the_same_command_starts_again(
    cifar10_path, tmp_path
):
    output_dir, cache = tmp_path / "run", tmp_path / "decoded"
    stopped = pretrain(
        output_dir, cifar10_path, "--decoded_cache_dir", str(cache), interrupt="decode:1", signal="SIGTERM"
    )
    assert stopped_by(stopped, "SIGTERM") and "the same command starts again" in stopped.stderr, (
        stopped.stderr
    )
    assert list(cache.iterdir()) == []  # the cache's temporary file went with the stop
    again = pretrain(output_dir, cifar10_path, "--decoded_cache_dir", str(cache))
    assert again.returncode == 0, again.stderr[-3000:]
    finished(output_dir)


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_killed_during_the_final_save_the_resume_saves_the_model_again(cifar10_path, tmp_path, signal_name):
    output_dir = tmp_path / "run"
    assert pretrain(output_dir, cifar10_path, interrupt="final_save:2", signal=signal_name).returncode != 0
    resumed = pretrain(output_dir, cifar10_path, "--resume_from_checkpoint", "latest")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    finished(output_dir)


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_the_probe_killed_during_feature_extraction_finishes_when_run_again(tmp_path, signal_name):
    model = save_tiny_model(tmp_path / "model", log_history=False)
    data = save_tiny_dataset(tmp_path / "data", per_class=(4, 2))
    argv = [
        str(REPO_ROOT / "scripts" / "linear_probe.py"),
        "--model_name_or_path",
        str(model),
        "--dataset_name",
        str(data),
        "--knn_k",
        "3",
        "--label_fractions",
        "0.5",
        "--skip_baseline",
        "--max_iter",
        "20",
    ]
    stopped = run(*argv, cwd=tmp_path, interrupt="features:2", signal=signal_name)
    assert stopped.returncode != 0 and (signal_name == "SIGKILL" or stopped_by(stopped, signal_name))
    assert not (model / "results.json").exists() and not list(model.rglob(".*.tmp"))
    again = run(*argv, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (model / "results.json").is_file() and (model / "README.md").is_file()


def test_fine_tuning_stopped_by_sigterm_saves_a_trainer_checkpoint_and_resumes_from_it(tmp_path):
    model = save_tiny_model(tmp_path / "model", log_history=False)
    data = save_tiny_dataset(tmp_path / "data", per_class=(4, 2), classes=SIX_CLASSES)
    output_dir = tmp_path / "finetuned"
    argv = [
        str(REPO_ROOT / "scripts" / "finetune.py"),
        "--model_name_or_path",
        str(model),
        "--dataset_name",
        str(data),
        "--output_dir",
        str(output_dir),
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--use_cpu",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
    ]
    stopped = run(*argv, cwd=tmp_path, interrupt="trainer_step:2", signal="SIGTERM")
    assert stopped_by(stopped, "SIGTERM"), stopped.stderr[-3000:]
    assert (
        "checkpoint-2 after step 2 of 6" in stopped.stderr
        and "--resume_from_checkpoint latest" in stopped.stderr
    )
    assert (output_dir / "checkpoint-2" / "trainer_state.json").is_file()
    resumed = run(*argv, "--resume_from_checkpoint", "latest", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (output_dir / "finetune_results.json").is_file()
