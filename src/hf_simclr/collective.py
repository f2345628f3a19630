"""What the processes of a run decide together, so that none is left waiting for another that failed, stopped
or has long work to do alone.

Several processes (`torch.distributed`, as accelerate or torchrun start them) meet in collective calls; a
process that leaves early (an exception, a signal, a refusal) or arrives late (work on the main process alone)
leaves the others waiting in their next collective until the process group's timeout, and each then fails
on its own, with another message and exit code. Every decision that stops or changes a run goes through
here instead:

- [`Processes.gather`] and [`Processes.agree`]: every process's value, or the largest (a stop signal, a
  fault), in one collective of the run's control group: the gloo process group the run's processes share
  (the default group on CPUs; beside NCCL's on GPUs a gloo group of its own, so that a decision waits for no
  device work);
- [`together`]: work every process does (a check of the disk, loading a checkpoint): when one fails, every
  process raises the same [`ProcessFailed`], after every one has finished;
- [`on_main`]: work the main process does alone (the kNN monitor, a snapshot, the model's save): the others
  wait for it in the control group, at most the run's timeout, then all raise or all go on.

With one process each is a plain call. torch is imported where it is used: the arguments read this module.
"""

from __future__ import annotations

import contextlib
import datetime
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from .arguments import UsageError

T = TypeVar("T")

# How long a process waits for the others by default (Trainer's --ddp_timeout; NCCL's own default is 10 min).
DEFAULT_TIMEOUT_SECONDS = 1800
_control: dict[str, Any] = {}  # this process's control group: {"group": ProcessGroup or None, "seconds": int}


class ProcessFailed(RuntimeError):
    """A process of the run failed, or did not answer in time: raised on every process alike.

    Args:
        what (`str`): the work, as a message says it (`"the kNN monitor's check"`).
        message (`str`): the error of the first process that failed (`rank`), or, without `rank`, that a
            process ended or did not answer within the run's timeout.
        rank (`int`, *optional*): the first process that failed, when it said so.
    """

    def __init__(self, what: str, message: str, rank: int | None = None) -> None:
        who = "a process of the run" if rank is None else f"process {rank}"
        super().__init__(f"{who} failed in {what}: {message}")
        self.what, self.message, self.rank = what, message, rank


@dataclass(frozen=True)
class Processes:
    """The processes of a run: this one's `rank` among `size` (`torch.distributed`'s)."""

    rank: int = 0
    size: int = 1

    @classmethod
    def of_run(cls) -> Processes:
        """The run's processes when `torch.distributed` is initialized (as accelerate does), else this one."""
        import torch

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return cls(torch.distributed.get_rank(), torch.distributed.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value`, by rank (a collective call of the control group: every process makes it).

        Raises:
            ProcessFailed: when a process does not make the call within the run's timeout, or has ended.
        """
        if self.size == 1:
            return [value]
        import torch

        values: list[Any] = [None] * self.size
        with _bounded("a decision of the run's processes"):
            torch.distributed.all_gather_object(values, value, group=control_group())
        return values

    def agree(self, value: int) -> int:
        """The largest of every process's `value` (one small collective of the control group): a stop signal
        or a fault that one process saw, seen by all at the same point."""
        if self.size == 1:
            return value
        import torch

        flag = torch.tensor([value], dtype=torch.int64)
        with _bounded("a decision of the run's processes"):
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, group=control_group())
        return int(flag.item())


def start_control_group(timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> None:
    """The run's control group, made once every process has joined the process group (a collective call):
    the default group when it is gloo's, else a gloo group of the same processes; both wait `timeout_seconds`."""
    import torch

    _control["seconds"] = timeout_seconds
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        _control["group"] = None
        return
    if torch.distributed.get_backend() == "gloo":
        _control["group"] = None  # the default group
        return
    timeout = datetime.timedelta(seconds=timeout_seconds)
    _control["group"] = torch.distributed.new_group(backend="gloo", timeout=timeout)


def control_group() -> Any:
    """The group decisions are made in (None: the default group)."""
    return _control.get("group")


def timeout_seconds() -> int:
    """How long a process waits for the others in a collective of the run."""
    return _control.get("seconds", DEFAULT_TIMEOUT_SECONDS)


@contextlib.contextmanager
def _bounded(what: str) -> Iterator[None]:
    """A collective of the control group that another process left or did not reach in time: [`ProcessFailed`]
    (the collective's own error is a `RuntimeError` of gloo: "Connection closed by peer", "Timed out")."""
    try:
        yield
    except RuntimeError as error:
        if isinstance(error, ProcessFailed):
            raise
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ProcessFailed(
            what,
            f"another process ended, or did not answer within {timeout_seconds()} s (--ddp_timeout): {first_line}",
        ) from error


def together(processes: Processes, what: str, work: Callable[[], T]) -> T:
    """`work()` on every process; when it raises on any, every process raises the same [`ProcessFailed`]
    (the first failing process's error), after every one has finished its `work`.

    A [`hf_simclr.arguments.UsageError`] (a refusal the user can fix) is raised again as such, on every
    process, with the failing process's message.
    """
    if processes.size == 1:  # its own error, as it is
        return work()
    result, failure = None, None
    try:
        result = work()
    except (
        Exception
    ) as error:  # every process learns of it below; KeyboardInterrupt and signals are not errors
        failure = _failure(error)
    raise_first(processes, what, processes.gather(failure))
    return result


def on_main(processes: Processes, what: str, work: Callable[[], T]) -> T | None:
    """`work()` on the main process alone, the others waiting for it (at most the run's timeout); when it
    raises, every process raises the same error. Returns its result on the main process, None elsewhere."""
    return together(processes, what, work if processes.is_main else lambda: None)


def raise_first(processes: Processes, what: str, failures: list[tuple[str, str, bool] | None]) -> None:
    """Raise the first failure of `failures` (by rank) on every process: a `UsageError` as one (its message
    naming the process when there are several), anything else as [`ProcessFailed`]."""
    for rank, failure in enumerate(failures):
        if failure is None:
            continue
        kind, message, usage = failure
        if usage:
            raise UsageError(message if processes.size == 1 else f"{message} (process {rank})")
        raise ProcessFailed(what, f"{kind}: {message}", rank)


def _failure(error: Exception) -> tuple[str, str, bool]:
    """(its type, its message, whether it is a user's mistake): what the other processes are told."""
    message = str(error) or "".join(traceback.format_exception_only(type(error), error)).strip()
    return type(error).__name__, message, isinstance(error, UsageError)
