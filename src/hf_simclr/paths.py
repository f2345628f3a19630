"""Paths, checked before the work: what each one will be used for, a local path or a Hub id, the disk's space.

Every job checks the paths it reads and writes when its arguments are parsed ([`check_paths`]), before any
data is read and without writing anything; [`local_path`] is the package's one rule for "a local path or a
Hub id", and [`offline_unless_reachable`] the one way a Hub id is loaded. Imports no torch.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .arguments import UsageError
from .folder_format import nearest_existing

READ_DIR = "a folder to read"
READ_FILE = "a file to read"
READ_DIR_OR_FILE = "a folder or file to read"
READ_DIR_OR_HUB = "a folder to read, or a Hub id"
WRITE_DIR = "a folder to write"
WRITE_FILE = "a file to write"


def looks_local(name: str | Path) -> bool:
    """Whether `name` can only be a local path (absolute, or starting with `.` or `~`), never a Hub id."""
    return Path(name).is_absolute() or str(name).startswith((".", "~"))


def local_path(name: str | Path) -> Path | None:
    """The package's one rule for "a local path or a Hub id": the local path `name` names, or None for a Hub id.

    A name is local when something exists at that path or when it can only be a path ([`looks_local`]);
    anything else (`org/name`, `name`) is a Hub id. Every job that takes a dataset or a model by name
    (loading, checking arguments, model cards) asks this function.
    """
    path = Path(name).expanduser()
    return path if path.exists() or looks_local(name) else None


# One request, no retries: `datasets` retries an unreachable Hub five times with backoff (about 30 s).
HUB_PROBE_TIMEOUT_SECONDS = 5.0


@contextmanager
def offline_unless_reachable() -> Iterator[None]:
    """Inside the block, `datasets`, `huggingface_hub` (and so transformers) are in offline mode when one
    request to the Hub failed: a cached copy still loads, and anything else fails at once instead of after
    five retries. Every load of a Hub id (a dataset, a model's files) runs inside it."""
    import datasets
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE or hub_reachable(constants.ENDPOINT):
        yield
        return
    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


@functools.cache
def hub_reachable(endpoint: str) -> bool:
    """Whether one request to the Hub's `endpoint` is answered (asked once per process: a load of a model
    resolves several files, each of which would otherwise ask again)."""
    from huggingface_hub import get_session

    try:
        get_session().head(endpoint, timeout=HUB_PROBE_TIMEOUT_SECONDS)
        return True
    except Exception:  # any failure of the connection: the HTTP clients' own errors, OSError
        return False


def check_path(flag: str, value: str | None, role: str) -> None:
    """Refuse a path that cannot serve its `role`, without writing anything.

    A folder to write must be a folder or not exist yet, below a writable folder; a file to write must not be
    a folder, below a writable folder; what is read must exist (a Hub id passes: it is checked on loading).

    Raises:
        UsageError: naming `--flag`, the path, what is wrong and what to do.
    """
    if value is None:
        return
    path = Path(value).expanduser()
    if role == READ_DIR_OR_HUB and local_path(value) is None:
        return  # a Hub id: checked on loading
    if role in (READ_DIR, READ_DIR_OR_HUB, READ_DIR_OR_FILE, READ_FILE) and not path.exists():
        raise UsageError(
            f"--{flag} {value}: no such {'file' if role == READ_FILE else 'folder'}; check the path."
        )
    if role in (READ_DIR, READ_DIR_OR_HUB) and not path.is_dir():
        raise UsageError(f"--{flag} {value} is a file, not a folder; pass the folder that holds it.")
    if role == READ_FILE and not path.is_file():
        raise UsageError(f"--{flag} {value} is a folder, not a file; pass the file.")
    if role == WRITE_DIR and path.exists() and not path.is_dir():
        raise UsageError(f"--{flag} {value} is a file, not a folder; pass a folder (new or existing).")
    if role == WRITE_FILE and path.is_dir():
        raise UsageError(f"--{flag} {value} is a folder; pass a file name.")
    if role in (WRITE_DIR, WRITE_FILE):
        check_writable(flag, value, path if role == WRITE_DIR else path.parent)


def check_repo_id(repo_id: str, flag: str = "repo_id") -> None:
    """Refuse a Hub repository id that the Hub would refuse, before any work.

    Raises:
        UsageError: naming the flag, the id, what is wrong with it and the accepted form.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise UsageError(
            f"--{flag} {repo_id!r} is not a Hub repository id ({error}). Use 'user/name' or 'org/name': letters, "
            f"digits, '-', '_' and '.', at most 96 characters."
        ) from error


def check_writable(flag: str, value: str, folder: Path) -> None:
    """Refuse when `folder` (or its nearest existing parent, where it will be created) cannot be written."""
    existing = nearest_existing(folder)
    if not existing.is_dir():
        raise UsageError(
            f"--{flag} {value}: {existing} is a file, so {folder} cannot be created; pick another path."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--{flag} {value}: {existing} is not writable; pick a folder you can write to.")


def check_free_space(flag: str, folder: Path, needed: int, what: str) -> None:
    """Refuse when the disk of `folder` (or of its nearest existing parent) has less than `needed` bytes free.

    Raises:
        UsageError: naming both numbers, what needs the space, and the way out.
    """
    existing = nearest_existing(folder)
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise UsageError(
            f"--{flag} {folder}: {what} needs about {megabytes(needed)}, and only {megabytes(free)} is free on "
            f"the disk of {existing}; free some space or pick a folder on another disk."
        )


def megabytes(size: int) -> str:
    """`size` bytes for a message: `"61.2 MB"`."""
    return f"{size / 1e6:.1f} MB"


def check_paths(arguments: Any, roles: dict[str, str]) -> None:
    """[`check_path`] for every `{field: role}` of a dataclass (each item of a list field)."""
    for flag, role in roles.items():
        value = getattr(arguments, flag)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            check_path(flag, item, role)
