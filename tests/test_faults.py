"""Runs on several processes cannot hang or silently corrupt: every decision that stops or changes a run is
agreed by all of them (`hf_simclr.collective`), waits are bounded, files are safe where several write them.

The processes are forked from the test (tests/processes.py: a gloo group on loopback, two processes, a
timeout that fails a hang instead of blocking the suite); torchrun itself only where its agent is what is
tested. The fault matrix is generated from what a run synchronises: a clean run records every decision its
processes make together, and then a fault is injected into each, on one process: every process must end,
with the same exit code and the fault's message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import filelock
import numpy as np
import pytest
import torch
from builders import save_tiny_dataset
from processes import free_port, run_processes
from safetensors.torch import load_file

from hf_simclr import collective

REPO_ROOT = Path(__file__).resolve().parents[1]
# 24 images of 16 px, 4 per process and step (a global batch of 8): 3 steps an epoch; a GroupNorm ResNet-18
# (no batch statistics: weights after a run do not depend on how the batch was cut).
RUN = [
    "--image_size", "16", "--per_device_train_batch_size", "4", "--logging_steps", "1", "--warmup_epochs", "0",
    "--report_to", "none", "--backbone_kwargs", '{"norm_layer": "groupnorm"}', "--seed", "5",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return save_tiny_dataset(tmp_path_factory.mktemp("faults") / "data", per_class=(8, 2))


def pretraining(data: Path, output_dir: Path, *extra: str) -> list[str]:
    return ["--dataset_name", str(data), "--output_dir", str(output_dir), *RUN, *extra]


def pretrain(argv: list[str], inject=None):
    """A target of [`run_processes`]: pretrain.py's command line, after `inject(rank)` patched this process."""

    def target(rank: int) -> None:
        from hf_simclr.pretraining.command import PRETRAIN

        if inject is not None:
            inject(rank)
        PRETRAIN.main(argv)

    return target


def ended_together(outcomes, code: int | None = None) -> bool:
    """No process hung, and all exited with one code (`code`, when given)."""
    codes = {outcome.exit_code for outcome in outcomes}
    return None not in codes and len(codes) == 1 and (code is None or codes == {code})


def describe(outcomes) -> str:
    return "\n".join(f"--- rank {o.rank}: exit {o.exit_code}\n{o.output[-2500:]}" for o in outcomes)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def same_weights(first: Path, second: Path) -> None:
    expected, got = weights(first), weights(second)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, atol=1e-6, rtol=0, msg=name)


# ----------------------------------------------------------------------------------------------
# The fault matrix: every decision a run's processes make together, a fault in each
# ----------------------------------------------------------------------------------------------


def decision(what: str) -> str:
    """A decision's name without its paths and numbers (`writing <path>`)."""
    return re.sub(r"\d+", "N", re.sub(r"/\S*", "<path>", what))


def record_decisions(log: Path):
    """Patch `collective.together` (which `on_main` calls) where every module holds it, to append each
    decision's name to `log`."""
    original = collective.together

    def recording(processes, what, work):
        with log.open("a") as handle:
            handle.write(decision(what) + "\n")
        return original(processes, what, work)

    _replace_together(original, recording)


def fail_at(point: str, rank: int):
    """An injection: the work of decision `point` raises on process `rank`."""

    def inject(this_rank: int) -> None:
        original = collective.together

        def failing(processes, what, work):
            if decision(what) == point and this_rank == rank:
                return original(processes, what, _raise)
            return original(processes, what, work)

        _replace_together(original, failing)

    return inject


def _raise() -> None:
    raise RuntimeError("injected fault")


def _replace_together(original, replacement) -> None:
    collective.together = replacement
    for module in list(sys.modules.values()):
        if (
            getattr(module, "__name__", "").startswith("hf_simclr")
            and getattr(module, "together", None) is original
        ):
            module.together = replacement


def matrix_run(data: Path, folder: Path, *extra: str) -> list[str]:
    """A run that makes every kind of decision: the output folder, the kNN monitor's queries, the decoded
    cache (its lock, each share, its check), the disks, snapshots, checkpoints, the monitor's checks, the save."""
    return pretraining(
        data,
        folder / "run",
        "--max_steps", "4", "--checkpointing_steps", "2", "--snapshot_epochs", "1", "--knn_every_epochs", "1",
        "--decoded_cache_dir", str(folder / "cache"), *extra,
    )  # fmt: skip


@pytest.mark.slow  # about 25 runs of two processes
def test_a_fault_in_any_decision_of_a_run_ends_every_process_with_its_message(data, tmp_path):
    clean = tmp_path / "clean"
    log = tmp_path / "decisions.txt"
    outcomes = run_processes(pretrain(matrix_run(data, clean), lambda rank: record_decisions(log)))
    assert ended_together(outcomes, 0), describe(outcomes)
    resumed = run_processes(
        pretrain(matrix_run(data, clean, "--resume_from_checkpoint", str(clean / "run" / "checkpoints" / "step_2")),
                 lambda rank: record_decisions(log))
    )  # fmt: skip
    assert ended_together(resumed, 0), describe(resumed)
    points = sorted(set(log.read_text().splitlines()))
    # the decisions this test was written against are still made (each is what it is named for)
    assert {"holding <path>", "the kNN monitor's check", "decoding its share of the split", "writing <path>",
            "saving the model to <path>", "loading <path>", "the snapshot of epoch N"} <= set(points), points  # fmt: skip
    failures = []
    for index, point in enumerate(points):
        folder = tmp_path / f"fault{index}"
        resume = (
            ["--resume_from_checkpoint", str(clean / "run" / "checkpoints" / "step_2")]
            if point == "loading <path>"
            else []
        )
        if resume:  # the clean run's checkpoint, in a folder of its own
            shutil.copytree(clean / "run" / "checkpoints", folder / "run" / "checkpoints")
            resume = ["--resume_from_checkpoint", str(folder / "run" / "checkpoints" / "step_2")]
        rank = index % 2  # the main process and the other, in turn
        outcomes = run_processes(
            pretrain(matrix_run(data, folder, *resume), fail_at(point, rank)), timeout=60
        )
        said = all("injected fault" in outcome.output for outcome in outcomes)
        if not (ended_together(outcomes) and outcomes[0].exit_code != 0 and said):
            failures.append(f"{point} (process {rank}): {describe(outcomes)}")
    assert not failures, "\n\n".join(failures)


# ----------------------------------------------------------------------------------------------
# Signals, non-finite numbers, timeouts, locks
# ----------------------------------------------------------------------------------------------


def signal_at(step: int, ranks: tuple[int, ...], times: int = 1, during_save: bool = False):
    """SIGTERM to this process after its step `step` (the train_step call of that step), `times` times, on the
    processes `ranks`; `during_save`: once more inside the checkpoint's save."""

    def inject(rank: int) -> None:
        import accelerate

        import hf_simclr.pretraining.loop as loop

        if rank not in ranks:
            return
        train_step, calls = loop.train_step, []

        def signalling(run, pixel_values):
            result = train_step(run, pixel_values)
            calls.append(1)
            if len(calls) == step:
                for _ in range(times):
                    os.kill(os.getpid(), signal.SIGTERM)
            return result

        loop.train_step = signalling
        if during_save:
            save_state = accelerate.Accelerator.save_state

            def signalled_save(self, *args, **kwargs):
                os.kill(os.getpid(), signal.SIGTERM)  # a second signal, while the checkpoint is written
                return save_state(self, *args, **kwargs)

            accelerate.Accelerator.save_state = signalled_save

    return inject


@pytest.fixture(scope="module")
def whole_run(data, tmp_path_factory) -> Path:
    """The run the stopped and resumed ones must equal: 6 steps of two processes, uninterrupted."""
    folder = tmp_path_factory.mktemp("whole") / "run"
    whole = run_processes(
        pretrain(pretraining(data, folder, "--max_steps", "6", "--checkpointing_steps", "none"))
    )
    assert ended_together(whole, 0), describe(whole)
    return folder


@pytest.mark.slow  # runs of two processes
@pytest.mark.parametrize(
    ("ranks", "times", "during_save"),
    [((1,), 1, False), ((0, 1), 2, True)],
    ids=["once-on-one-process", "twice-on-every-process-and-again-during-the-save"],
)
def test_a_stop_signal_on_one_or_every_process_stops_all_at_one_step_with_one_checkpoint_and_the_resume_is_exact(
    data, whole_run, tmp_path, ranks, times, during_save
):
    # Before: the processes agreed only at log steps, and a second signal raised at once: one process stopped,
    # the other died in gloo's 'Connection closed by peer', no checkpoint was written.
    argv = pretraining(
        data, tmp_path / "run", "--max_steps", "6", "--checkpointing_steps", "epoch", "--logging_steps", "50"
    )
    stopped = run_processes(pretrain(argv, signal_at(2, ranks, times, during_save)))
    assert ended_together(stopped, 128 + signal.SIGTERM), describe(stopped)
    assert all(
        "stopped by SIGTERM" in o.output and "step_2 after step 2 of 6" in o.output for o in stopped
    ), describe(stopped)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_2"]
    resumed = run_processes(pretrain([*argv, "--resume_from_checkpoint", "latest"]))
    assert ended_together(resumed, 0) and "at step 2" in resumed[0].output, describe(resumed)
    same_weights(whole_run, tmp_path / "run")


def nan_loss_at(step: int, rank: int):
    """The loss of step `step` is NaN on process `rank` (fp16 overflow on one process, say)."""

    def inject(this_rank: int) -> None:
        import hf_simclr.pretraining.watch as watch

        if this_rank != rank:
            return
        observe, calls = watch.NonFiniteWatch.observe, []

        def observing(self, loss, step_index):
            calls.append(1)
            return observe(self, loss * float("nan") if len(calls) == step else loss, step_index)

        watch.NonFiniteWatch.observe = observing

    return inject


@pytest.mark.slow  # runs of two processes
@pytest.mark.parametrize("rank", [0, 1])
def test_a_non_finite_loss_on_one_process_stops_every_process_at_the_same_step(data, tmp_path, rank):
    # Before: that process raised while the others entered the next collective; all waited until the timeout.
    argv = pretraining(
        data, tmp_path / "run", "--max_steps", "6", "--checkpointing_steps", "2", "--logging_steps", "2"
    )
    outcomes = run_processes(pretrain(argv, nan_loss_at(4, rank)), timeout=60)
    assert ended_together(outcomes, 1), describe(outcomes)
    assert all("Non-finite loss at step 4" in o.output and "step_2" in o.output for o in outcomes), describe(
        outcomes
    )
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_2"]


@pytest.mark.slow  # runs of two processes
def test_main_process_work_beyond_the_timeout_ends_every_process_naming_the_timeout(data, tmp_path):
    # Before: no timeout was set or said; the others waited in NCCL's 10 minutes, the run's work took longer.
    def slow_monitor(rank: int) -> None:
        import time

        import hf_simclr.pretraining.loop as loop

        check = loop.monitor_knn

        def slow(run, progress):
            time.sleep(9)
            return check(run, progress)

        loop.monitor_knn = slow

    argv = pretraining(data, tmp_path / "run", "--max_steps", "3", "--knn_every_epochs", "1", "--ddp_timeout", "4",
                       "--checkpointing_steps", "none")  # fmt: skip
    outcomes = run_processes(pretrain(argv, slow_monitor), timeout=60)
    assert ended_together(outcomes, 1), describe(outcomes)
    assert "within 4 s (--ddp_timeout)" in outcomes[1].output, describe(outcomes)
    assert "wait for each other at most 4 s (--ddp_timeout)" in outcomes[0].output  # said in the headline


@pytest.mark.slow  # runs of two processes
def test_a_decode_lock_held_by_another_run_ends_every_process_naming_it(data, tmp_path):
    # Before: the leader waited on the lock without a bound while the others sat in a gather.
    from hf_simclr.data import decoded_cache_file, load_image_dataset
    from hf_simclr.decoded_cache import machine_lock_file

    cache_dir = tmp_path / "cache"
    rows = load_image_dataset(str(data), split="train", seed=5)  # as the run loads it
    held = filelock.FileLock(machine_lock_file(decoded_cache_file(cache_dir, rows, 16)))
    held.acquire()
    try:
        argv = pretraining(data, tmp_path / "run", "--max_steps", "1", "--knn_every_epochs", "0", "--ddp_timeout", "6",
                           "--decoded_cache_dir", str(cache_dir))  # fmt: skip
        outcomes = run_processes(pretrain(argv), timeout=60)
    finally:
        held.release()
    assert ended_together(outcomes, 2), describe(outcomes)
    assert all("another run on this machine has been decoding" in o.output for o in outcomes), describe(
        outcomes
    )


@pytest.mark.slow  # torchrun: its agent is what is signalled
def test_a_signal_to_torchrun_stops_every_process_with_a_checkpoint_and_says_to_resume_with_torchrun(
    data, tmp_path
):
    # Before: the ranks agreed only at log steps (every 50, against torchrun's 30 s grace), and the printed
    # resume command began with `python`, not `torchrun`.
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import os, runpy, signal, sys\n"
        "import hf_simclr.pretraining.loop as loop\n"
        "step, calls = loop.train_step, []\n"
        "def signal_the_agent(run, pixel_values):\n"
        "    result = step(run, pixel_values)\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2 and os.environ['RANK'] == '0':\n"
        "        os.kill(os.getppid(), signal.SIGTERM)  # as a scheduler signals the launcher\n"
        "    return result\n"
        "loop.train_step = signal_the_agent\n"
        f"sys.argv = [{str(REPO_ROOT / 'scripts' / 'pretrain.py')!r}, *sys.argv[1:]]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    argv = pretraining(
        data, tmp_path / "run", "--max_steps", "30", "--checkpointing_steps", "none", "--logging_steps", "50"
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
               str(worker), *argv]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode != 0 and "stopped by SIGTERM" in result.stderr, result.stderr[-3000:]
    written = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert len(written) == 1 and written[0].startswith("step_"), written
    assert "--resume_from_checkpoint latest" in result.stderr and "torchrun " in result.stderr, result.stderr[
        -3000:
    ]


# ----------------------------------------------------------------------------------------------
# The training model, unwrapped for the monitor and snapshots
# ----------------------------------------------------------------------------------------------


def eager_compile(rank: int) -> None:
    """torch.compile without its compiler (on a CPU it would take minutes): the wrapper and its unwrapping are
    what is tested."""
    import functools

    torch.compile = functools.partial(torch.compile, backend="eager")


@pytest.mark.slow  # runs of two processes
def test_a_chunked_run_with_the_monitor_and_a_snapshot_equals_one_without_them(data, tmp_path):
    # Before: the kNN monitor's unwrap_model pointed the compiled wrapper at the bare model on the main process
    # only: its chunks all-reduced after every chunk, the others' once a step, and the run hung.
    common = [
        "--max_steps",
        "6",
        "--chunk_size",
        "2",
        "--torch_compile",
        "true",
        "--checkpointing_steps",
        "none",
    ]
    plain = run_processes(
        pretrain(pretraining(data, tmp_path / "plain", *common, "--knn_every_epochs", "0"), eager_compile),
        timeout=120,
    )
    assert ended_together(plain, 0), describe(plain)
    watched = pretraining(
        data, tmp_path / "watched", *common, "--knn_every_epochs", "1", "--snapshot_epochs", "1"
    )
    outcomes = run_processes(pretrain(watched, eager_compile), timeout=120)
    assert ended_together(outcomes, 0), describe(outcomes)
    same_weights(tmp_path / "plain", tmp_path / "watched")


def test_unwrapping_never_changes_the_training_model(tmp_path):
    # accelerate's unwrap_model(keep_torch_compile=True) sets the compiled wrapper's _orig_mod to the bare module,
    # so the model trained with no longer wraps DDP.
    from accelerate import Accelerator

    from hf_simclr.pretraining.loop import bare_model

    store = f"file://{tmp_path / 'store'}"
    torch.distributed.init_process_group("gloo", init_method=store, rank=0, world_size=1)
    try:
        model = torch.nn.Linear(2, 2)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        compiled = torch.compile(ddp, backend="eager")
        assert bare_model(Accelerator(cpu=True), compiled) is model
        assert compiled._orig_mod is ddp
    finally:
        torch.distributed.destroy_process_group()


# ----------------------------------------------------------------------------------------------
# Files several processes, runs or users share
# ----------------------------------------------------------------------------------------------


def test_each_share_of_a_cache_file_holds_whole_pages():
    from hf_simclr.decoded_cache import PAGE_BYTES, _share

    for shape in [(1000, 3, 32, 32), (777, 3, 96, 96), (50, 3, 8, 8), (3, 3, 16, 16), (10_000, 3, 17, 17)]:
        for parts in (2, 3, 8):
            shares = [_share(shape, index, parts) for index in range(parts)]
            assert shares[0].start == 0 and shares[-1].stop == shape[0]
            assert all(a.stop == b.start for a, b in zip(shares, shares[1:], strict=False))
            row_bytes = int(np.prod(shape[1:]))
            for share in shares[1:]:  # a share starts on a page (the header is one page)
                assert (PAGE_BYTES + share.start * row_bytes) % PAGE_BYTES == 0 or share.start == shape[0]


@pytest.mark.slow  # two processes
def test_shares_that_overwrote_each_other_are_found_and_no_cache_is_kept(tmp_path):
    # Processes on machines of a file system that writes back whole pages may overwrite each other's rows: the
    # damage was silent and permanent. Here the second process also writes the first row of the first's share.
    rows = save_tiny_dataset(tmp_path / "data", per_class=(40, 2))

    def clobbering(rank: int) -> None:
        import time

        import datasets

        import hf_simclr.data as data

        decode = data._decode_chunk

        def decode_and_clobber(dataset, raw, out, start, stop):
            written = decode(dataset, raw, out, start, stop)
            if rank == 1:  # once the first process has written its share: its first row, from the second
                time.sleep(1)
                out[0] = 255 - np.asarray(out[0])
            return written

        data._decode_chunk = decode_and_clobber
        torch.distributed.init_process_group("gloo")
        split = datasets.load_from_disk(str(rows))["train"]
        data.decode_images(split, 16, data.decoded_cache_file(tmp_path / "cache", split, 16), num_workers=1)

    outcomes = run_processes(clobbering)
    assert ended_together(outcomes, 1), describe(outcomes)
    assert all("read back otherwise than their process wrote them" in o.output for o in outcomes), describe(
        outcomes
    )
    assert not list((tmp_path / "cache").glob("*.npy")), list((tmp_path / "cache").iterdir())


def test_a_complete_cache_is_never_replaced_and_stale_temporaries_are_removed(tmp_path):
    import datasets
    import psutil

    from hf_simclr.data import DECODER_VERSION, decode_images, decoded_cache_file

    split = datasets.load_from_disk(str(save_tiny_dataset(tmp_path / "data", per_class=(2, 1))))["train"]
    cache = decoded_cache_file(tmp_path / "cache", split, 16)
    assert cache.name.endswith(f"-v{DECODER_VERSION}.npy")  # the decoder's version in the name
    decode_images(split, 16, cache, num_workers=1)
    inode = cache.stat().st_ino
    dead = next(pid for pid in range(4_000_000, 4_100_000) if not psutil.pid_exists(pid))
    host = os.uname().nodename
    stale = cache.parent / f".{cache.name}.{host}.{dead}.abc.tmp"
    alive = cache.parent / f".{cache.name}.{host}.{os.getpid()}.def.tmp"
    stale.write_bytes(b"x" * 100)
    alive.write_bytes(b"x")
    cache.rename(cache.with_suffix(".kept"))  # decoded again: another run would now write the same name
    decode_images(split, 16, cache, num_workers=1)
    assert not stale.exists() and alive.exists()  # a killed decode's file goes, a running one's stays
    first = cache.stat().st_ino
    from hf_simclr.decoded_cache import _place

    copy = cache.parent / "other.tmp"
    copy.write_bytes(cache.read_bytes())
    state = {"temporary": copy}
    _place(state, cache, (6, 3, 16, 16), [])  # another run finishing the same cache: the first one stays
    assert cache.stat().st_ino == first != inode and not copy.exists()


def test_the_decode_lock_folder_serves_every_user(tmp_path, monkeypatch):
    # Before: it took the first user's umask (0755), and a second user's run failed with a PermissionError.
    if os.getuid() != 0:
        pytest.skip("needs root, to run a second user (nobody)")
    import tempfile

    from hf_simclr.decoded_cache import machine_lock_file

    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # a temporary folder every user reaches, as /tmp is
    os.chmod(shared, 0o777)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    machine_lock_file(tmp_path / "cache.npy")  # made by root, under root's umask
    child = os.fork()
    if child == 0:  # a second user takes a lock in it
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            filelock.FileLock(machine_lock_file(tmp_path / "other.npy"), mode=0o666).acquire(timeout=1)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# ----------------------------------------------------------------------------------------------
# Checkpoints, snapshots and logs of one folder
# ----------------------------------------------------------------------------------------------


def one_process(argv: list[str], inject=None):
    (outcome,) = run_processes(pretrain(argv, inject), world_size=1)
    return outcome


def test_a_resume_from_an_older_checkpoint_sets_the_newer_ones_and_their_log_aside(data, tmp_path):
    # Before: the abandoned step_8 and step_10 stayed (a later `latest` took them), and the log held steps twice.
    argv = pretraining(data, tmp_path / "run", "--max_steps", "6", "--checkpointing_steps", "2", "--checkpoints_total_limit", "0",
                       "--knn_every_epochs", "0", "--per_device_train_batch_size", "8")  # fmt: skip
    assert one_process(argv).exit_code == 0
    older = tmp_path / "run" / "checkpoints" / "step_2"
    again = one_process([*argv, "--resume_from_checkpoint", str(older)])
    assert again.exit_code == 0 and "set aside what the run wrote after it" in again.output, again.output
    steps = [
        r["step"] for r in map(json.loads, (tmp_path / "run" / "log_history.jsonl").read_text().splitlines())
    ]
    assert steps == sorted(set(steps)) == [1, 2, 3, 4, 5, 6]
    (aside,) = (tmp_path / "run" / "abandoned").iterdir()
    assert sorted(p.name for p in (aside / "checkpoints").iterdir()) == ["step_4", "step_6"]
    assert [json.loads(line)["step"] for line in (aside / "log_history.jsonl").read_text().splitlines()] == [
        3,
        4,
        5,
        6,
    ]


def test_resume_command_continues_from_the_latest_checkpoint_instead_of_the_one_given(monkeypatch):
    from hf_simclr.pretraining.loop import resume_command

    monkeypatch.setattr(
        sys, "argv", ["scripts/pretrain.py", "--resume_from_checkpoint", "runs/x/checkpoints/step_4"]
    )
    assert resume_command() == "python scripts/pretrain.py --resume_from_checkpoint latest"


def test_a_killed_run_without_checkpoints_keeps_its_snapshots_aside(data, tmp_path):
    # Before: the same command again deleted the earlier run's snapshots as files of an interrupted start.
    def killed_in_epoch_2(rank: int) -> None:
        import hf_simclr.pretraining.loop as loop

        step, calls = loop.train_step, []

        def killing(run, pixel_values):
            calls.append(1)
            if len(calls) == 5:
                os.kill(os.getpid(), signal.SIGKILL)
            return step(run, pixel_values)

        loop.train_step = killing

    argv = pretraining(data, tmp_path / "run", "--max_steps", "6", "--checkpointing_steps", "none", "--snapshot_epochs", "1",
                       "--knn_every_epochs", "0", "--per_device_train_batch_size", "8")  # fmt: skip
    assert one_process(argv, killed_in_epoch_2).exit_code == -signal.SIGKILL
    assert (tmp_path / "run" / "snapshots" / "epoch_1").is_dir()
    again = one_process(argv)
    assert again.exit_code == 0, again.output
    (aside,) = (tmp_path / "run" / "abandoned").iterdir()
    assert (aside / "snapshots" / "epoch_1" / "model.safetensors").is_file() and (
        aside / "log_history.jsonl"
    ).is_file()


def test_a_run_shorter_than_its_logging_interval_logs_its_end(data, tmp_path):
    # Before: with --checkpointing_steps none and fewer steps than --logging_steps, nothing was logged.
    argv = pretraining(data, tmp_path / "run", "--max_steps", "2", "--checkpointing_steps", "none", "--logging_steps", "50",
                       "--knn_every_epochs", "0", "--per_device_train_batch_size", "8")  # fmt: skip
    assert one_process(argv).exit_code == 0
    (record,) = map(json.loads, (tmp_path / "run" / "log_history.jsonl").read_text().splitlines())
    assert record["step"] == 2 and np.isfinite(record["loss"])


def test_a_decode_worker_runs_one_thread(tmp_path):
    # Forked after torch's (and CUDA's) threads started, each worker would run as many threads as the machine.
    from hf_simclr.decoded_cache import fill_rows

    out = np.zeros((4, 1), dtype=np.int64)
    out = np.frombuffer(__import__("mmap").mmap(-1, out.nbytes), dtype=np.int64).reshape(4, 1)

    def threads(array, start, stop):
        array[start:stop] = torch.get_num_threads()
        return stop - start

    fill_rows(threads, out, range(4), 2, 2, "threads")
    assert out.flatten().tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("removable", [True, False], ids=["filelock-4", "filelock-3"])
def test_a_folders_lock_file_is_removed_only_where_no_second_holder_can_follow(
    tmp_path, monkeypatch, removable
):
    # Before: it was removed before the lock was released, whatever filelock's version: with filelock 3, a
    # process that had opened it could then lock the removed file while another locked a new one.
    from hf_simclr import folder_hold
    from hf_simclr.folder_format import FOLDER_LOCK_FILE

    monkeypatch.setattr(folder_hold, "LOCK_FILE_REMOVABLE", removable)
    (tmp_path / "run").mkdir()
    with folder_hold.folder_holds():
        folder_hold.hold_folder("output_dir", tmp_path / "run")
    assert (tmp_path / "run" / FOLDER_LOCK_FILE).exists() != removable
    assert folder_hold.LOCK_FILE_REMOVABLE == removable
    with folder_hold.folder_holds():  # held again afterwards either way
        folder_hold.hold_folder("output_dir", tmp_path / "run")
