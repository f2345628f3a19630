"""Grid files: a base recipe, overrides for every variant, and the variants, each parsed before anything runs.

A grid file (YAML) names a base recipe and variants, each a set of overrides of the recipe's arguments::

    base: configs/cifar10-resnet18-reference.yaml   # relative to the grid file, or to the working directory
    overrides: {num_train_epochs: 50, seed: 0, checkpointing_steps: none}   # every variant (the protocol)
    evaluation: {knn_k: [10, 200]}                  # arguments of the evaluation (LinearProbeArguments)
    variants:
      base: {}
      no-head: {projection_layers: 0}
    sections:                                        # optional: how the markdown table is grouped
      - title: Projection head
        variants: [base, no-head]
        paper: "A nonlinear head beats a linear one by ~3 points and no head by >10 (Table 3)."
        verdict: "..."                               # one sentence, written once the numbers are in
    spread: [base, base-seed1]                       # optional: two seeds of one recipe, the run-to-run spread
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from ..arguments import UsageError, flag_arguments, recipe_arguments, run_arguments
from ..conditions import refuse_typed
from ..dataset_arguments import EVALUATION_SHARES
from ..evaluation.arguments import LinearProbeArguments
from ..pretraining.arguments import PRETRAINING_ARGUMENTS, PretrainingArguments
from ..pretraining.data_arguments import DataArguments
from ..pretraining.model_arguments import ModelArguments

# Where a run happens, not what it is: left out when deciding whether stored results match a variant.
LOCATION_ARGUMENTS = ("dataset_name", "output_dir", "decoded_cache_dir", "model_name_or_path")


@dataclass
class Section:
    """A group of rows in the results table, with the paper's finding and our verdict beside it."""

    title: str
    variants: list[str]
    paper: str | None = None
    verdict: str | None = None


@dataclass
class Grid:
    """A parsed grid file (see the module docstring).

    Attributes:
        path (`Path`): the grid file.
        base (`Path`): the base recipe (a `configs/*.yaml` of `scripts/pretrain.py`).
        overrides (`dict`): applied to every variant, before the variant's own.
        evaluation (`dict`): [`LinearProbeArguments`] fields for every evaluation.
        variants (`dict[str, dict]`): name -> overrides, in file order.
        sections (`list[Section]`): grouping of the table; one section of all variants by default.
        spread (`list[str]`): two variants that differ only by seed, or empty.
    """

    path: Path
    base: Path
    overrides: dict[str, Any]
    evaluation: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    sections: list[Section]
    spread: list[str] = field(default_factory=list)


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file: every name and argument is checked before anything runs.

    Raises:
        ValueError: for a missing base recipe, an unknown argument, a section naming an unknown variant,
            a variant name that cannot be a folder name, or a `spread` that is not two variants.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"grid file {path} not found; pass a YAML file with `base` and `variants`.")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(spec) - {"base", "overrides", "evaluation", "variants", "sections", "spread"})
    if unknown:
        raise UsageError(
            f"{path}: unknown keys {unknown}; a grid has base, overrides, evaluation, variants, "
            f"sections, spread."
        )
    if "base" not in spec or not spec.get("variants"):
        raise UsageError(f"{path}: a grid needs `base` (a recipe file) and at least one entry in `variants`.")
    base = Path(spec["base"])
    if not base.is_file() and (path.parent / base).is_file():
        base = Path(os.path.normpath(path.parent / base))
    if not base.is_file():
        raise UsageError(
            f"{path}: base recipe {spec['base']} not found (relative to the working directory or "
            f"to the grid file)."
        )
    variants = {str(name): dict(overrides or {}) for name, overrides in spec["variants"].items()}
    for name in variants:
        if not name or name.startswith(".") or "/" in name or name != name.strip():
            raise UsageError(
                f"{path}: variant name {name!r} must be usable as a folder name (no '/', no dot first)."
            )
    sections = [Section(**section) for section in spec.get("sections") or []]
    sections = sections or [Section(title=path.stem, variants=list(variants))]
    for section in sections:
        missing = [name for name in section.variants if name not in variants]
        if missing:
            raise UsageError(
                f"{path}: section {section.title!r} names unknown variants {missing}; "
                f"variants are {list(variants)}."
            )
    spread = list(spec.get("spread") or [])
    if spread and (len(spread) != 2 or any(name not in variants for name in spread)):
        raise UsageError(f"{path}: spread must name two variants (two seeds of one recipe); got {spread}.")
    grid = Grid(
        path,
        base,
        dict(spec.get("overrides") or {}),
        dict(spec.get("evaluation") or {}),
        variants,
        sections,
        spread,
    )
    for name in variants:  # parse every variant now: a typo fails here, not after hours of the grid
        variant_arguments(grid, name, {}, Path("unused"), Path("unused"))
    return grid


@dataclass
class VariantArguments:
    """Everything one variant runs with."""

    model: ModelArguments
    data: DataArguments
    training: PretrainingArguments
    evaluation: LinearProbeArguments  # of the model folder `training.output_dir`, once pretraining wrote it
    overrides: dict[str, Any]  # the grid's, the command line's and the variant's, merged

    def evaluation_of_the_model(self) -> LinearProbeArguments:
        """The evaluation's arguments, pointed at the model folder pretraining wrote."""
        return dataclasses.replace(self.evaluation, model_name_or_path=self.training.output_dir)

    def settings(self) -> dict[str, Any]:
        """What the variant's results depend on (paths left out): stored with the results, compared on rerun."""
        merged = run_arguments(self.model, self.data, self.training)
        evaluation = {
            f"evaluation.{key}": value for key, value in dataclasses.asdict(self.evaluation).items()
        }
        settings = {**merged, **evaluation}
        location = {*LOCATION_ARGUMENTS, *(f"evaluation.{key}" for key in LOCATION_ARGUMENTS)}
        return json.loads(json.dumps({k: v for k, v in settings.items() if k not in location}, default=str))


def _as_argv(overrides: dict[str, Any]) -> list[str]:
    return [item for key, value in overrides.items() for item in flag_arguments(key, value)]


def argument_text(value: Any) -> str:
    """A setting's value as typed after `--override key=`."""
    if isinstance(value, (list, tuple)):
        return " ".join(str(item) for item in value)
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def parse_variant(
    argv: list[str], source: str, typed: set[str]
) -> tuple[ModelArguments, DataArguments, PretrainingArguments]:
    """The pretraining arguments of a variant's command line, every check run (as `scripts/pretrain.py` does):
    a setting of `typed` (the command line's `--override` and the variant's own, not the grid's protocol) whose
    condition fails is refused ([`refuse_typed`]).

    Raises:
        UsageError: naming `source` (where the variant's settings come from) and what is wrong.
    """
    import argparse

    from transformers import HfArgumentParser

    parser = HfArgumentParser(PRETRAINING_ARGUMENTS, exit_on_error=False)
    try:
        settings, _ = parser.parse_known_args(argv)
        refuse_typed(PRETRAINING_ARGUMENTS, settings, typed)
        arguments = parser.parse_args_into_dataclasses(args=argv)
        for instance in arguments:
            if hasattr(instance, "check"):  # as `scripts/pretrain.py` parses
                instance.check()
    except (argparse.ArgumentError, ValueError) as error:
        raise UsageError(f"{source}: {error}") from error
    return arguments


def variant_arguments(
    grid: Grid, name: str, command_line: dict[str, Any], work_dir: Path, cache_dir: Path
) -> VariantArguments:
    """Parse the arguments of variant `name`: recipe, then grid overrides, command line, variant.

    Raises:
        ValueError: for an argument no dataclass knows (the message names the variant and the argument).
    """
    sources = {
        f"{grid.path}: overrides": grid.overrides,
        "--override": command_line,
        f"{grid.path}: variant {name!r}": grid.variants[name],
    }
    overrides = {key: value for settings in sources.values() for key, value in settings.items()}
    pretraining_fields = {f.name for cls in PRETRAINING_ARGUMENTS for f in dataclasses.fields(cls)}
    for source, settings in sources.items():
        unknown = sorted(set(settings) - pretraining_fields)
        if unknown:
            raise UsageError(
                f"{source} sets {unknown}, which scripts/pretrain.py does not take (see "
                f"`python scripts/pretrain.py --help` for its settings)."
            )
    argv = recipe_arguments(str(grid.base)) + _as_argv(overrides)
    argv += ["--output_dir", str(work_dir / name), "--decoded_cache_dir", str(cache_dir)]
    shown = "; ".join(f"{source} {settings}" for source, settings in sources.items() if settings)
    model_args, data_args, training_args = parse_variant(
        argv, f"variant {name!r} ({shown or 'the base recipe'})", {*command_line, *grid.variants[name]}
    )

    probe_fields = {f.name for f in dataclasses.fields(LinearProbeArguments)}
    unknown = sorted(set(grid.evaluation) - probe_fields)
    if unknown:
        raise UsageError(
            f"{grid.path}: evaluation sets {unknown}, which scripts/linear_probe.py does not take."
        )
    shared = {key: getattr(data_args, key) for key in EVALUATION_SHARES}
    evaluation = {"features": "both", "skip_baseline": False, **shared, **grid.evaluation}
    # Checked now; the model folder it evaluates is written by the variant's pretraining (`for_model` then).
    evaluation_args = LinearProbeArguments(
        **{
            **evaluation,
            "model_name_or_path": ".",
            "output_dir": str(work_dir / name),
            "decoded_cache_dir": str(cache_dir),
        }
    )
    evaluated = {**dataclasses.asdict(evaluation_args), "model_name_or_path": str(work_dir / name)}
    try:  # the evaluation's settings as the model folder's evaluation will read them
        refuse_typed((LinearProbeArguments,), SimpleNamespace(**evaluated), set(grid.evaluation))
    except UsageError as error:
        raise UsageError(f"{grid.path}: evaluation: {error}") from error
    evaluation_args.check()  # as the probe's parsing does: --device is on this machine
    return VariantArguments(model_args, data_args, training_args, evaluation_args, overrides)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["num_train_epochs=1", "max_train_samples=512"]` -> `{"num_train_epochs": 1, "max_train_samples": 512}`.

    Raises:
        ValueError: for an item without `=`.
    """
    parsed = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise UsageError(f"--override {item!r}: write key=value, e.g. --override num_train_epochs=1.")
        parsed[key.strip().lstrip("-")] = yaml.safe_load(value)
    return parsed
