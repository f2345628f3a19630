"""Several processes of one run, for the tests of what they decide together (tests/test_faults.py).

[`run_processes`] forks the test's process into `world_size` processes (no interpreter start and no torch
import each: a few seconds saved per process), each rank `r` of a gloo process group on loopback, as torchrun
would start them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT set before anything reads them). Each runs
`target(rank)` with its output to a file of its own; a process still running at the timeout is killed and
reported as hung, so a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Outcome:
    """How one process ended: its exit code (None: it hung and was killed at the timeout) and its output."""

    rank: int
    exit_code: int | None
    output: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_processes(
    target: Callable[[int], Any], world_size: int = 2, timeout: float = 90.0, environment: dict | None = None
) -> list[Outcome]:
    """`target(rank)` in `world_size` forked processes of one process group; how each ended."""
    port, folder = free_port(), Path(tempfile.mkdtemp(prefix="ranks-"))
    context = multiprocessing.get_context("fork")
    outputs = [folder / f"rank{rank}.txt" for rank in range(world_size)]
    processes = [
        context.Process(
            target=_child,
            args=(target, rank, world_size, port, outputs[rank], environment or {}),
            daemon=True,
        )
        for rank in range(world_size)
    ]
    for process in processes:
        process.start()
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    outcomes = []
    for rank, process in enumerate(processes):
        hung = process.is_alive()
        if hung:
            os.kill(process.pid, signal.SIGKILL)
            process.join()
        output = outputs[rank].read_text(errors="replace") if outputs[rank].exists() else ""
        outcomes.append(Outcome(rank, None if hung else process.exitcode, output))
    return outcomes


def _child(target, rank: int, world_size: int, port: int, output: Path, environment: dict) -> None:
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    if world_size > 1:  # one process: started as a script is, without a process group
        os.environ.update(
            RANK=str(rank),
            WORLD_SIZE=str(world_size),
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=str(world_size),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
    os.environ.update(OMP_NUM_THREADS="1", **environment)
    code = 0
    try:
        import torch
        from accelerate.state import AcceleratorState, PartialState

        torch.set_num_threads(1)  # forked from a process whose thread pools are not the child's
        AcceleratorState._reset_state(reset_partial_state=True)  # the test process's state is not this run's
        PartialState._reset_state()
        target(rank)
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
