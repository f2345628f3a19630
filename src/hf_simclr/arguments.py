"""Command-line arguments: one way to report a user's mistake, recipe files, paths checked before the work.

Every script parses dataclasses with `transformers.HfArgumentParser` through a [`Command`]: a value out of range,
a missing path, a file where a folder is expected, or any [`UsageError`] raised later by the library (a
dataset without the split asked for, a folder that holds another run, the Hub out of reach) is printed under
the script's usage as `script: error: --flag value: what is wrong; what to do`, with exit code 2 and no
traceback. A traceback means a bug in the package.

Values are checked in the dataclasses' `__post_init__` with [`check_arguments`] (numbers) and
[`check_paths`] (what each path will be used for): both run when the arguments are parsed, before any data
is read, and write nothing. The flags are the dataclasses' field names, so an error raised below the scripts
names the setting (`--eval_split`), which is the flag of every script that has it.

This module imports no torch: `--help` and an argument error answer before the heavy imports.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import difflib
import functools
import importlib
import json
import math
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import stop_signals
from .folder_format import (
    FOLDER_HOLDER_FILE,
    FOLDER_LOCK_FILE,
    NoSpaceLeft,
    nearest_existing,
    write_text_atomically,
)


class UsageError(ValueError):
    """A mistake the user can fix (an argument, a file, the environment), with the flag and what to do.

    Scripts print it under their usage and exit with code 2, without a traceback.
    """


def check_arguments(arguments: Any, checks: dict[str, tuple[bool, str]]) -> None:
    """Raise `UsageError("--flag value must be requirement.")` for the first failed check.

    Args:
        arguments (dataclass): the arguments, read for the value shown in the message.
        checks (`dict`): `{flag: (valid, requirement)}`.
    """
    for flag, (valid, requirement) in checks.items():
        if not valid:
            raise UsageError(f"--{flag} {getattr(arguments, flag)} must be {requirement}.")


def as_flags(message: str, settings: Sequence[str]) -> str:
    """A message of the Python API, `name=value` (`cifar_stem=False`, `backbone='resnet18'`), with each of
    `settings` written as the script's flag (`--cifar_stem false`, `--backbone resnet18`)."""
    names = "|".join(re.escape(name) for name in sorted(settings, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w-])({names})=('[^']*'|\"[^\"]*\"|[^\s,;)]+?)(?=[\s,;)]|\.(?:\s|$)|$)")

    def flag(match: re.Match) -> str:
        value = match.group(2).strip("'\"")
        return f"--{match.group(1)} {value.lower() if value in ('True', 'False', 'None') else value}"

    return pattern.sub(flag, message)


@contextmanager
def as_usage_error(settings: Sequence[str]) -> Iterator[None]:
    """Turn a `ValueError` of the Python API (a config or recipe value, `name=value`) into a [`UsageError`]
    that names the script's flags."""
    try:
        yield
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(as_flags(str(error), settings)) from error


def positive(value: float | None) -> bool:
    """A finite number above 0 (None, "unset", passes: the caller's default applies)."""
    return value is None or (math.isfinite(value) and value > 0)


# ----------------------------------------------------------------------------------------------
# Paths: what a run will read and write, checked before anything is done
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# One run per folder
# ----------------------------------------------------------------------------------------------

_held: list[tuple[Any, Path, Path | None]] = []  # this process's holds: (lock, holder file, folder created)


def hold_folder(flag: str, folder: str | Path, say: Callable[[str], Any] = print) -> None:
    """Hold `folder` for this process, so that a second run into it is refused (until [`folder_holds`]'s
    block ends, or the process does).

    The lock is `filelock`'s on `FOLDER_LOCK_FILE` in the folder: an operating-system lock, which the
    system releases when its holder ends in any way (SIGKILL and a lost machine included). `FOLDER_HOLDER_FILE`
    beside it names the holder (host, process, command, since when); one found while the lock is free was
    left by a holder that was killed: the folder is taken over, and `say`s so. Both files are removed on
    release, and the folder too if this call created it and nothing else was written into it. A folder this
    process holds already is held once.

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
    """Release a folder [`hold_folder`] took: its two files first (a run starting meanwhile makes new ones),
    then the lock, then the folders it created (`created`: the highest), if they stayed empty."""
    with contextlib.suppress(OSError):
        holder_file.unlink()
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


# ----------------------------------------------------------------------------------------------
# Recipe files and a run's record
# ----------------------------------------------------------------------------------------------


def recipe_arguments(path: str | Path) -> list[str]:
    """A JSON/YAML recipe (`configs/*.yaml`) as command-line arguments, so that later arguments override it.

    `null` means the setting's default (the key is left out); a list gives one value per item.

    Raises:
        UsageError: for a recipe that is missing, unreadable, or not a mapping of settings.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"recipe {path}: no such file; pass a recipe such as configs/cifar10-resnet18-reference.yaml."
        )
    try:
        recipe = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (ValueError, yaml.YAMLError) as error:
        raise UsageError(f"recipe {path} cannot be read ({error}); fix its syntax.") from error
    if not isinstance(recipe or {}, dict):
        raise UsageError(f"recipe {path} must be a mapping of settings (`learning_rate: 0.06`, ...).")
    return [item for key, value in (recipe or {}).items() for item in flag_arguments(key, value)]


def flag_arguments(key: str, value: Any) -> list[str]:
    """`--key value` as command-line items: nothing for None (the default), one item per list element."""
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple)) else [value]
    return [f"--{key}", *(str(item).lower() if isinstance(item, bool) else str(item) for item in values)]


def run_arguments(*argument_sets: Any) -> dict[str, Any]:
    """All arguments of a run as one flat dict (saved with checkpoints, the model and the trackers)."""
    return {key: value for arguments in argument_sets for key, value in dataclasses.asdict(arguments).items()}


# ----------------------------------------------------------------------------------------------
# A script: parse, check, run, report a mistake
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A script of `scripts/`: its argument dataclasses and the library function it runs.

    Args:
        name (`str`): the script's file name, for the usage line.
        arguments (`tuple[type, ...]`): the dataclasses, parsed by `HfArgumentParser`.
        run (`str`): `"module:function"`, imported only once the arguments are parsed and checked (so that
            `--help` and an argument error do not wait for torch); called with the dataclass instances.
        first_positional (`str`, *optional*): a field the first command-line item fills when it is not a
            flag (`grid` of run_experiments.py), or `"recipe"`: a recipe file whose settings come first.
        report (`str`, *optional*): `"module:function"` that turns the run's result into the text printed
            at the end (the library functions themselves print only progress).
        interrupted (`str`): what to do after Ctrl-C, printed instead of a traceback.
        known_elsewhere (`tuple[tuple[str, str], ...]`): flags of other tools that users type here
            (Trainer's `--bf16`, the accelerate examples' `--with_tracking`), each with this script's way
            of saying it; an unknown flag not among them is answered with its closest option.
        required_by_checks (`tuple[str, ...]`): options the checks require though their fields have a default
            (the probe's `--dataset_name`), shown as required. `check_typed(typed)` of a dataclass gets the flags
            typed on the command line (not a recipe's), to refuse one the run would not use.
    """

    name: str
    arguments: tuple[type, ...]
    run: str
    first_positional: str | None = None
    report: str | None = None
    interrupted: str = "nothing was left half-written: run the same command again."
    known_elsewhere: tuple[tuple[str, str], ...] = ()
    required_by_checks: tuple[str, ...] = ()

    def parser(self) -> Any:
        from transformers import HfArgumentParser

        # A mistake shows this one usage line, not every flag: `--help` lists them with their advice.
        # No abbreviations: `--model` or `--k` would be taken for a longer option, or refused as ambiguous.
        parser = HfArgumentParser(self.arguments, prog=self.name, usage=self.usage(), allow_abbrev=False)
        parser.formatter_class = HelpFormatter
        for action in parser._actions:
            if action.required or action.dest in self.required_by_checks:
                action.help = f"{action.help} (required)"
        return parser

    def usage(self) -> str:
        """`export_timm.py [-h] --model_dir MODEL_DIR [options]`: the first positional item, each required option."""
        first = self.first_positional  # a recipe file, or a field (run_experiments.py's grid file)
        positional = " [recipe.yaml]" if first == "recipe" else f" {first.upper()}" if first else ""
        fields = [f for arguments in self.arguments for f in dataclasses.fields(arguments) if f.init]
        unset = [f.name for f in fields if f.default is dataclasses.MISSING is f.default_factory]
        required = [name for name in [*unset, *self.required_by_checks] if name != first]
        options = "".join(f" --{name} {name.upper()}" for name in required)
        return f"{self.name} [-h]{positional}{options} [options]"

    def parse(self, argv: Sequence[str] | None = None) -> tuple[Any, ...]:
        """The dataclasses of a command line, every check that needs no data done; exits 2 on a mistake."""
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = self.parser()
        try:
            expanded = self.expand(argv)
            _, unknown = parser.parse_known_args(expanded)  # before any value's check: a wrong flag first
            if unknown:
                raise UsageError(self.unknown_arguments(unknown, parser))
            arguments = tuple(parser.parse_args_into_dataclasses(args=expanded))
            typed = {item[2:].split("=", 1)[0].replace("-", "_") for item in argv if item.startswith("--")}
            for instance in arguments:
                if hasattr(instance, "check"):  # the checks that need torch (a config, a recipe)
                    instance.check()
                getattr(instance, "check_typed", lambda typed: None)(typed)  # a flag the run would not use
        except ValueError as error:  # UsageError, or a value transformers' own dataclasses refuse
            parser.error(str(error))
        return arguments

    def unknown_arguments(self, unknown: list[str], parser: Any) -> str:
        """What is wrong with each item no option took: another tool's flag (with this script's way of
        saying it), a misspelt option (with the closest one), or a stray value."""
        options = sorted(name[2:] for name in parser._option_string_actions if name.startswith("--"))
        elsewhere = dict(self.known_elsewhere)
        messages = []
        for position, item in enumerate(unknown):
            if not item.startswith("--"):
                if position == 0 or not unknown[position - 1].startswith("--"):  # else: that flag's value
                    messages.append(f"{item!r} belongs to no option (a value without its --flag?)")
                continue
            name = item[2:].split("=", 1)[0]
            longer = [option for option in options if option.startswith(name) and "-" not in option]
            close = longer if len(longer) == 1 else difflib.get_close_matches(name, options, n=1, cutoff=0.75)
            if name in elsewhere:
                messages.append(f"--{name} is not an option of {self.name}: {elsewhere[name]}")
            elif close:
                messages.append(f"--{name} is not an option of {self.name}; did you mean --{close[0]}?")
            else:
                messages.append(f"--{name} is not an option of {self.name}; --help lists them")
        return "; ".join(messages) + "."

    def expand(self, argv: list[str]) -> list[str]:
        """The first positional item as its flag (a recipe file: as its settings)."""
        if not argv or argv[0].startswith("-") or self.first_positional is None:
            return argv
        if self.first_positional == "recipe":
            return recipe_arguments(argv[0]) + argv[1:]
        return [f"--{self.first_positional}", *argv]

    def main(self, argv: Sequence[str] | None = None) -> Any:
        """Parse, check and run; a [`UsageError`] at any point: the usage and the message, exit code 2;
        Ctrl-C: what to do next, exit code 130; a stop signal (SIGTERM, SIGUSR1, SIGHUP: see
        [`stop_signals`]): what to do next, exit code 128 + the signal's number."""
        arguments = self.parse(argv)
        stop_signals.install()
        try:
            with folder_holds():
                result = load(self.run)(*arguments)
        except UsageError as error:
            self.parser().error(str(error))
        except KeyboardInterrupt as interruption:
            print(f"\n{self.name}: interrupted; {self.advice_after(interruption)}", file=sys.stderr)
            raise SystemExit(130) from None
        except NoSpaceLeft as error:
            print(f"\n{self.name}: {error.strerror}.", file=sys.stderr)
            raise SystemExit(1) from None
        except stop_signals.Stopped as stop:
            print(f"\n{self.name}: stopped by {stop.signal_name}; {self.advice_after(stop)}", file=sys.stderr)
            raise SystemExit(stop.exit_code) from None
        if self.report is not None and (text := load(self.report)(result)):  # "": said already
            print(text)
        return result

    def advice_after(self, stop: BaseException) -> str:
        """What to do after Ctrl-C or a stop signal: what the stop itself knows (its checkpoint, the resume
        command) when it was raised for this script, else the script's own advice."""
        next_step = getattr(stop, "next_step", None)
        return next_step if next_step and getattr(stop, "script", None) == self.name else self.interrupted


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` without `(default: None)` (the help says what unset does), `--no_X` as the opposite of `--X`."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if isinstance(action, argparse._StoreFalseAction) and action.option_strings[0].startswith("--no_"):
            return f"The opposite of --{action.dest}."
        return action.help if action.default is None else super()._get_help_string(action)


def load(reference: str) -> Callable[..., Any]:
    """The function `"module:function"` names, imported now."""
    module, function = reference.split(":")
    return getattr(importlib.import_module(module), function)
