"""One run per folder: a folder held by the run that writes it, so that a second run into it is refused.

Imports no torch.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.metadata
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .arguments import UsageError
from .folder_format import FOLDER_HOLDER_FILE, FOLDER_LOCK_FILE, nearest_existing, write_text_atomically

# Whether a held lock file may be removed: `filelock` 4's acquire checks that the file it locked still has a
# name (else it tries again), so no process can hold a removed file; 3.x's does not.
LOCK_FILE_REMOVABLE = int(importlib.metadata.version("filelock").split(".")[0]) >= 4
_held: list[tuple[Any, Path, Path | None]] = []  # this process's holds: (lock, holder file, folder created)


def hold_folder(flag: str, folder: str | Path, say: Callable[[str], Any] = print) -> None:
    """Hold `folder` for this process, so that a second run into it is refused (until [`folder_holds`]'s
    block ends, or the process does).

    The lock is `filelock`'s on `FOLDER_LOCK_FILE` in the folder: on a local disk an operating-system lock,
    which the system releases when its holder ends in any way (SIGKILL included); on a network file system,
    what its lock manager makes of it (NFSv4 releases a lost machine's lock when its lease expires; where
    there are no locks, `filelock` falls back to a file-existence lock, which a killed holder leaves until it
    is removed). `FOLDER_HOLDER_FILE` beside it names the holder (host, process, command, since when); one
    found while the lock is free was left by a holder that was killed: the folder is taken over, and `say`s
    so. On release the holder file is removed, then the lock file, while it is still held, only with a
    `filelock` whose acquire takes no lock on a removed file (version 4: it tries again on the new one);
    with an earlier one, a process that opened the file before it was removed could then hold it while
    another holds a new one, so it stays. The folder goes too if this call created it and nothing else was
    written into it. A folder this process holds already is held once.

    Raises:
        UsageError: when another process holds the folder, naming it, before any work.
    """
    from filelock import FileLock, Timeout

    folder = Path(folder).expanduser().absolute()
    if any(holder.parent == folder for _, holder, _ in _held):
        return
    existing = nearest_existing(folder)
    # the highest folder this call creates (the folder itself, or a parent of it), None if it exists
    created = None if existing == folder else existing / folder.relative_to(existing).parts[0]
    folder.mkdir(parents=True, exist_ok=True)
    lock, holder_file = FileLock(folder / FOLDER_LOCK_FILE), folder / FOLDER_HOLDER_FILE
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(
            f"--{flag} {folder} is in use by another run ({describe_holder(holder_file)}); two runs in one "
            f"folder would mix their files. Wait for it to finish, stop it, or pick another --{flag}."
        ) from None
    if holder_file.is_file():
        say(
            f"{folder}: taking it over from a run that ended without letting go ({describe_holder(holder_file)})."
        )
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": " ".join(sys.argv),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_text_atomically(holder_file, json.dumps(holder) + "\n")
    _held.append((lock, holder_file, created))


@contextmanager
def folder_holds() -> Iterator[None]:
    """Release, when the block ends (in any way), every folder [`hold_folder`] took inside it."""
    before = len(_held)
    try:
        yield
    finally:
        while len(_held) > before:
            let_go(*_held.pop())


def holds_folders(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` run inside [`folder_holds`]: the folders it holds are let go when it returns or raises."""

    @functools.wraps(function)
    def holding(*args: Any, **kwargs: Any) -> Any:
        with folder_holds():
            return function(*args, **kwargs)

    return holding


def describe_holder(holder_file: Path) -> str:
    """`process 123 on host-1 since 2026-12-03 20:10:00: scripts/pretrain.py ...` from the holder file."""
    try:
        holder = json.loads(holder_file.read_text())
        return f"process {holder['pid']} on {holder['host']} since {holder['since']}: {holder['command']}"
    except (OSError, ValueError, KeyError):
        return "its holder is not recorded"


def let_go(lock: Any, holder_file: Path, created: Path | None) -> None:
    """Release a folder [`hold_folder`] took: its holder file first (a run starting meanwhile writes a new one),
    its lock file while held where that is safe ([`LOCK_FILE_REMOVABLE`]), then the lock, then the folders it
    created (`created`: the highest), if they stayed empty."""
    with contextlib.suppress(OSError):
        holder_file.unlink()
        if LOCK_FILE_REMOVABLE:
            holder_file.with_name(FOLDER_LOCK_FILE).unlink()
    lock.release(force=True)
    if created is None:
        return
    # The folders this call created go, from the deepest, while nothing was written into them: a refused
    # start leaves no folder behind.
    folder = holder_file.parent
    with contextlib.suppress(OSError):
        for path in [folder, *folder.parents]:
            path.rmdir()  # fails (and stops) at the first that is not empty
            if path == created:
                break


@atexit.register
def _let_go_at_exit() -> None:
    while _held:
        let_go(*_held.pop())
