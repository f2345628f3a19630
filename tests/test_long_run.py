"""The faults of a long run on a shared machine, as a matrix where it can be one: every file of a checkpoint
damaged in turn, folders that are read-only or full (a small tmpfs, as root), two runs into one folder, and
the file modes of everything a run writes. The signals' end-to-end runs are in test_interruptions.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import torch
from builders import save_tiny_dataset, save_tiny_model, tiny_pretraining
from safetensors.torch import save_file

from hf_simclr.arguments import UsageError
from hf_simclr.collective import Processes
from hf_simclr.evaluation.arguments import LinearProbeArguments
from hf_simclr.evaluation.features import read_cached_features
from hf_simclr.evaluation.probe import run_linear_probe
from hf_simclr.folder_format import (
    FOLDER_HOLDER_FILE,
    FOLDER_LOCK_FILE,
    NoSpaceLeft,
    plain_mode,
    staged_folder,
    write_bytes_atomically,
)
from hf_simclr.folder_hold import folder_holds, hold_folder
from hf_simclr.model_folder import read_json_lines
from hf_simclr.pretraining.checkpoints import (
    checkpoint_damage,
    find_checkpoint,
    list_checkpoints,
    save_checkpoint,
)
from hf_simclr.pretraining.log import drop_partial_last_line


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny finished run with two checkpoints (steps 3 and 6), and its data: read it, or change a copy."""
    root = tmp_path_factory.mktemp("long_run")
    data = save_tiny_dataset(root / "data", per_class=(8, 2))
    tiny_pretraining(root / "run", data)
    return root / "run", data


# ----------------------------------------------------------------------------------------------
# A damaged checkpoint: each file of the newest one in turn, truncated or empty
# ----------------------------------------------------------------------------------------------


def damage(file: Path, how: str) -> None:
    content = file.read_bytes()
    file.write_bytes(content[: len(content) // 2] if how == "truncated" else b"")


def checkpoint_files(run: Path) -> list[str]:
    return sorted(path.name for path in list_checkpoints(run)[-1].iterdir())


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_latest_skips_a_damaged_checkpoint_for_the_newest_complete_one_whatever_file_is_damaged(
    finished_run, tmp_path, how
):
    run, _ = finished_run
    names = checkpoint_files(run)
    assert {"model.safetensors", "optimizer.bin", "resume_settings.json"} <= set(names), names
    for name in names:  # generated from what a checkpoint holds: a new file is covered without a new test
        copy = tmp_path / name / "run"
        shutil.copytree(run, copy)
        damage(copy / "checkpoints" / "step_6" / name, how)
        said = []
        assert find_checkpoint(copy, "latest", say=said.append) == copy / "checkpoints" / "step_3", name
        assert name in said[0] and "step_6" in said[0] and "taking" in said[1], said
        with pytest.raises(UsageError, match=rf"step_6 is damaged: {name} .*newest complete one, .*step_3"):
            find_checkpoint(copy, str(copy / "checkpoints" / "step_6"))


def test_every_checkpoint_damaged_is_refused_naming_each(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run[0], copy)
    for checkpoint in list_checkpoints(copy):
        damage(checkpoint / "optimizer.bin", "truncated")
    with pytest.raises(
        UsageError, match=r"every checkpoint is damaged \(step_6: optimizer.bin cannot be read"
    ):
        find_checkpoint(copy, "latest")


def test_a_resume_from_a_truncated_latest_checkpoint_continues_from_the_older_one(
    finished_run, tmp_path, capsys
):
    run, data = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    damage(copy / "checkpoints" / "step_6" / "optimizer.bin", "truncated")
    summary = tiny_pretraining(copy, data, resume_from_checkpoint="latest")
    out = capsys.readouterr().out
    assert "Skipped" in out and "optimizer.bin" in out and "Resumed from" in out and "step 3" in out, out
    assert summary["steps"] == 6 and checkpoint_damage(copy / "checkpoints" / "step_6") is None


def as_parquet(saved: Path, folder: Path) -> Path:
    """A `save_to_disk` dataset as a folder of parquet files in the Hub's layout (`data/<split>-*.parquet`),
    which `datasets` fingerprints by the files' paths."""
    for split, dataset in datasets.load_from_disk(str(saved)).items():
        dataset.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def test_a_copy_of_the_data_staged_elsewhere_resumes_and_a_changed_one_is_refused(finished_run, tmp_path):
    _, saved = finished_run
    data, staged = as_parquet(saved, tmp_path / "data"), tmp_path / "scratch" / "data"
    run = tmp_path / "run"
    tiny_pretraining(run, data, max_steps=3)
    shutil.copytree(data, staged)  # what a cluster job does: the same files, another folder
    assert tiny_pretraining(run, staged, max_steps=3, resume_from_checkpoint="latest")["steps"] == 3
    changed = as_parquet(
        save_tiny_dataset(tmp_path / "other", per_class=(8, 2), classes=list("xyz")), tmp_path / "c"
    )
    with pytest.raises(UsageError, match=r"dataset_identity: '\w+' in the checkpoint, '\w+' now"):
        tiny_pretraining(run, changed, max_steps=3, resume_from_checkpoint="latest")


# ----------------------------------------------------------------------------------------------
# A damaged model folder: each file the probe may read, truncated in turn
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model_and_data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("damaged_model")
    return save_tiny_model(root / "model"), save_tiny_dataset(root / "data", per_class=(4, 2))


def test_the_probe_on_a_damaged_model_folder_names_the_file_before_any_work_or_does_not_need_it(
    tiny_model_and_data, tmp_path
):
    model, data = tiny_model_and_data
    outcomes = {}
    for name in sorted(path.name for path in model.iterdir()):  # generated from what a model folder holds
        copy = tmp_path / name
        shutil.copytree(model, copy)
        damage(copy / name, "truncated")
        args = LinearProbeArguments(
            model_name_or_path=str(copy), dataset_name=str(data), skip_baseline=True, plots=True, max_iter=5
        )
        args.knn_k, args.label_fractions = [3], []
        try:
            run_linear_probe(args)
            outcomes[name] = "not needed"  # the code files: the installed package's classes are used
        except UsageError as error:
            assert name in str(error), (name, str(error))
            assert not (copy / "feature_cache").exists(), name  # refused before any image was encoded
            outcomes[name] = "refused"
    assert outcomes["model.safetensors"] == outcomes["config.json"] == "refused", outcomes
    assert outcomes["training_args.json"] == outcomes["preprocessor_config.json"] == "refused", outcomes


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_a_damaged_feature_cache_is_computed_again_not_read(tmp_path, how):
    cache = tmp_path / "features.safetensors"
    save_file({"h": torch.ones(4, 2)}, cache, metadata={"key": "inputs"})
    assert read_cached_features(cache, "inputs")["h"].shape == (4, 2)
    damage(cache, how)
    assert read_cached_features(cache, "inputs") is None


def test_a_log_cut_short_by_a_kill_keeps_its_whole_records_and_the_next_run_appends_on_a_new_line(tmp_path):
    log = tmp_path / "log_history.jsonl"
    log.write_text('{"step": 1, "loss": 4.5}\n{"step": 2, "lo')
    assert read_json_lines(log) == [{"step": 1, "loss": 4.5}]
    drop_partial_last_line(log)
    assert log.read_text() == '{"step": 1, "loss": 4.5}\n'
    log.write_text('{"step": 1, "lo\n{"step": 2}\n')
    with pytest.raises(UsageError, match="log_history.jsonl, line 1, cannot be read"):
        read_json_lines(log)


# ----------------------------------------------------------------------------------------------
# One run per folder
# ----------------------------------------------------------------------------------------------

HOLD = (
    "import sys, time; from hf_simclr.folder_hold import hold_folder; hold_folder('output_dir', sys.argv[1]); "
    "print('held', flush=True); time.sleep(60)"
)


@contextlib.contextmanager
def held_by_another_process(folder: Path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_run_into_a_held_folder_is_refused_naming_the_holder_before_any_work(finished_run, tmp_path):
    _, data = finished_run
    folder = tmp_path / "run"
    with held_by_another_process(folder) as holder:
        with pytest.raises(UsageError, match=rf"in use by another run \(process {holder.pid} on .* since "):
            tiny_pretraining(folder, data)
        assert sorted(path.name for path in folder.iterdir()) == [FOLDER_HOLDER_FILE, FOLDER_LOCK_FILE]


def test_a_folder_whose_holder_was_killed_is_taken_over_with_a_message(tmp_path):
    folder = tmp_path / "run"
    with held_by_another_process(folder) as holder:
        pid = holder.pid
    said = []
    with folder_holds():
        hold_folder("output_dir", folder, say=said.append)
        assert f"process {pid}" in said[0] and "taking it over" in said[0]
    assert list(folder.iterdir()) == []  # the killed holder's files are gone with the new holder's


def test_a_run_lets_go_of_its_folder_when_it_ends(finished_run):
    run, _ = finished_run
    assert not (run / FOLDER_LOCK_FILE).exists() and not (run / FOLDER_HOLDER_FILE).exists()


# ----------------------------------------------------------------------------------------------
# Read-only and full folders (a small tmpfs: root only)
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder: Path, size: str, read_only: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def remount_read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def test_the_probe_on_a_model_folder_on_a_read_only_mount_is_refused_before_any_work(tmp_path):
    data = save_tiny_dataset(tmp_path / "data", per_class=(4, 2))
    with tmpfs(tmp_path / "mount", "64m") as mount:
        model = save_tiny_model(mount / "model")
        remount_read_only(mount)
        args = LinearProbeArguments(model_name_or_path=str(model), dataset_name=str(data), skip_baseline=True)
        started = time.perf_counter()
        with pytest.raises(UsageError, match=r"model_name_or_path .* is not writable.*pass --output_dir"):
            run_linear_probe(args)
        assert time.perf_counter() - started < 2  # refused before the model or any image is read


def test_a_run_that_does_not_fit_on_its_disk_is_refused_naming_both_numbers(finished_run, tmp_path):
    _, data = finished_run
    with tmpfs(tmp_path / "mount", "2m") as mount:
        with pytest.raises(
            UsageError, match=r"checkpoint\(s\) of .* MB.* needs about .* MB, and only .* MB is free"
        ):
            tiny_pretraining(mount / "run", data)
        assert not (mount / "run").exists()


def test_a_write_that_fills_the_disk_leaves_no_temporary_file_and_says_so(tmp_path):
    with tmpfs(tmp_path / "mount", "256k") as mount:
        with pytest.raises(NoSpaceLeft, match="no space left on device: .*big.bin"):
            write_bytes_atomically(mount / "big.bin", bytes(1 << 20))
        with pytest.raises(NoSpaceLeft, match="no space left on device: .*step_3"):
            with staged_folder(mount / "step_3") as staging:  # torch names a full disk its own way
                torch.save(torch.zeros(1 << 18), staging / "optimizer.bin")
        assert list(mount.iterdir()) == []


def test_a_checkpoint_that_fills_the_disk_leaves_no_half_written_folder_and_says_so(tmp_path):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(256, 256)
    model, optimizer = accelerator.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    model(torch.ones(1, 256)).sum().backward()
    optimizer.step()
    with tmpfs(tmp_path / "mount", "256k") as mount:
        with pytest.raises(NoSpaceLeft, match=r"no space left on device: .*checkpoints/step_1 .* MB free"):
            save_checkpoint(accelerator, Processes(), mount, 1, 2, {"global_batch_size": 1})
        assert list((mount / "checkpoints").iterdir()) == []  # no .tmp-step_1 filling the disk


# ----------------------------------------------------------------------------------------------
# Files readable by others: the mode a plain open() gives
# ----------------------------------------------------------------------------------------------


def test_every_file_a_run_writes_has_the_mode_a_plain_open_gives(finished_run):
    run, _ = finished_run
    modes = {
        str(path.relative_to(run)): oct(path.stat().st_mode & 0o777)
        for path in run.rglob("*")
        if path.stat().st_mode & 0o777 != plain_mode(path.is_dir())
    }
    assert modes == {}, modes
