"""A user's mistake and what each value must be: one error, one wording of a check, recipe files, a run's record.

Every script parses dataclasses with `transformers.HfArgumentParser` through a [`hf_simclr.command.Command`]: a
value out of range, a missing path, a file where a folder is expected, or any [`UsageError`] raised later by
the library (a dataset without the split asked for, a folder that holds another run, the Hub out of reach) is
printed under the script's usage as `script: error: --flag value: what is wrong; what to do`, with exit code 2
and no traceback. A traceback means a bug in the package.

Values are checked in the dataclasses' `__post_init__` with [`check_arguments`] (numbers) and
[`hf_simclr.paths.check_paths`] (what each path will be used for): both run when the arguments are parsed,
before any data is read, and write nothing. The flags are the dataclasses' field names, so an error raised
below the scripts names the setting (`--eval_split`), which is the flag of every script that has it.

This module imports no torch: `--help` and an argument error answer before the heavy imports.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


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
