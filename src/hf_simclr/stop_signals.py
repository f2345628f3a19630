"""Stopping on a scheduler's signal: SIGTERM, SIGUSR1 and SIGHUP end a script cleanly instead of killing it.

SLURM, Kubernetes and most schedulers send SIGTERM before they preempt a job (SLURM's `--signal` can send
SIGUSR1 ahead of time); a closed terminal sends SIGHUP. Without a handler each ends Python at once (exit
143 for SIGTERM, no message, no cleanup). With [`install`] (every script does it through `Command.main`):

- outside a training loop, the signal raises [`Stopped`] where the program is, as Ctrl-C raises
  `KeyboardInterrupt`: atomic writes remove their temporary file, staged folders their staging folder, and
  the script exits with 128 + the signal's number and a line saying what to run next;
- inside [`deferred`] (pretraining's and fine-tuning's loops), the signal is only noted: the loop finishes
  its step, writes a checkpoint, and then raises [`Stopped`] naming it. A signal that comes again (SLURM
  signals every process of the step, and torchrun forwards its own again) is noted too, never cutting the
  checkpoint short: the save needs its time (give it: SLURM's `--signal=B:TERM@120`, torchrun's 30 s grace
  before its SIGKILL), and Ctrl-C stays the way to stop at once.

A signal a shell set to be ignored (`nohup` ignores SIGHUP) stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP)

_state = {"deferring": False, "pending": None}


class Stopped(BaseException):
    """A stop signal ended the script (a `BaseException`, as `KeyboardInterrupt` is: no `except Exception`
    swallows it).

    Args:
        signal_number (`int`): the signal that came.
        next_step (`str`, *optional*): what the user runs to continue (e.g. the checkpoint written and the
            resume command), said when `script` is the script that stopped; else the script's own advice.
        script (`str`, *optional*): the script `next_step` is for (`pretrain.py`: another script that runs
            pretraining inside it, such as the experiment runner, continues its own way).
    """

    def __init__(self, signal_number: int, next_step: str | None = None, script: str | None = None) -> None:
        super().__init__(signal_number, next_step, script)
        self.signal_number, self.next_step, self.script = signal_number, next_step, script

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal killed (143 for SIGTERM)."""
        return 128 + self.signal_number


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what the script that stopped knows of how to continue (its last checkpoint, say).

    Args:
        next_step (`str`): printed instead of the general advice of `script`.
        script (`str`): the script `next_step` is for (as for [`Stopped`]).
    """

    def __init__(self, next_step: str, script: str) -> None:
        super().__init__(next_step, script)
        self.next_step, self.script = next_step, script


def _handle(signal_number: int, frame: object) -> None:
    if _state["deferring"]:  # the loop finishes its step and checkpoints; a repeated signal changes nothing
        _state["pending"] = _state["pending"] or signal_number
        return
    raise Stopped(signal_number)


def install() -> None:
    """Handle the stop signals in this process (main thread only; signals a shell ignores stay ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in STOP_SIGNALS:
        if signal.getsignal(number) in (signal.SIG_DFL, _handle):
            signal.signal(number, _handle)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block a stop signal is only noted ([`pending`]); the loop asks and stops at a safe point."""
    _state["deferring"], _state["pending"] = True, None
    try:
        yield
    finally:
        _state["deferring"] = False


def pending() -> int | None:
    """The stop signal noted inside [`deferred`], if one came."""
    return _state["pending"]
