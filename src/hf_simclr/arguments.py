"""Command-line arguments: one wording for every argument error, recipe files, a run's flat record.

Every script parses dataclasses with `transformers.HfArgumentParser`; their `__post_init__` checks the values
with [`check_arguments`], so a value out of range is refused when the arguments are parsed, before any
data is loaded, and always in the same words: `--flag value must be requirement.`
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml


def check_arguments(arguments: Any, checks: dict[str, tuple[bool, str]]) -> None:
    """Raise `ValueError("--flag value must be requirement.")` for the first failed check.

    Args:
        arguments (dataclass): the arguments, read for the value shown in the message.
        checks (`dict`): `{flag: (valid, requirement)}`.
    """
    for flag, (valid, requirement) in checks.items():
        if not valid:
            raise ValueError(f"--{flag} {getattr(arguments, flag)} must be {requirement}.")


def recipe_arguments(path: str | Path) -> list[str]:
    """A JSON/YAML recipe (`configs/*.yaml`) as command-line arguments, so that later arguments override it."""
    with open(path) as handle:
        recipe = json.load(handle) if str(path).endswith(".json") else yaml.safe_load(handle)
    return [item for key, value in (recipe or {}).items() for item in (f"--{key}", str(value))]


def run_arguments(*argument_sets: Any) -> dict[str, Any]:
    """All arguments of a run as one flat dict (saved with checkpoints, the model and the trackers)."""
    merged: dict[str, Any] = {}
    for arguments in argument_sets:
        merged.update(dataclasses.asdict(arguments))
    return merged
