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
    chain:                                           # optional: after each variant's probe, the few-labels chain
      label_fractions: [0.01, 0.1]                   # each fine-tuning and distillation at each fraction
      settings: {num_train_epochs: 30, optim: sgd}   # finetune.py's and distill.py's for every run (Trainer's too)
      finetune: {v1: {}, v2: {classifier_head_layers: 1}, random: {init: random}}   # name: finetune.py settings
      distill: {self: {teacher: v2}, small: {teacher: v2, student: resnet18}}        # teacher: a finetune name

With a `chain`, each variant is pretrained, probed, fine-tuned (every `finetune` run at every fraction, from the
variant's model folder), distilled (every `distill` run from its teacher at the same fraction) and tabulated
(`semi_supervised.md` in the variant's results folder), on the data of its evaluation.
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
from ..dataset_arguments import DATASET_FLAGS, EVALUATION_SHARES
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


CHAIN_KEYS = ("label_fractions", "settings", "finetune", "distill")


@dataclass
class Chain:
    """The few-labels chain run after each variant's probe (see the module docstring).

    Attributes:
        label_fractions (`list[float]`): the fractions every run is made at.
        settings (`dict`): finetune.py's and distill.py's settings (and Trainer's) for every run.
        finetune (`dict[str, dict]`): name -> finetune.py settings.
        distill (`dict[str, dict]`): name -> distill.py settings, `teacher` naming a `finetune` run.
    """

    label_fractions: list[float]
    settings: dict[str, Any]
    finetune: dict[str, dict[str, Any]]
    distill: dict[str, dict[str, Any]]

    def run_name(self, name: str, fraction: float) -> str:
        """The folder of run `name` at `fraction`: `v2-1pct`."""
        return f"{name}-{100 * fraction:g}pct"


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
        chain ([`Chain`], *optional*): fine-tuning, distillation and the table after each variant's probe.
    """

    path: Path
    base: Path
    overrides: dict[str, Any]
    evaluation: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    sections: list[Section]
    spread: list[str] = field(default_factory=list)
    chain: Chain | None = None


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
    unknown = sorted(
        set(spec) - {"base", "overrides", "evaluation", "variants", "sections", "spread", "chain"}
    )
    if unknown:
        raise UsageError(
            f"{path}: unknown keys {unknown}; a grid has base, overrides, evaluation, variants, "
            f"sections, spread, chain."
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
        load_chain(path, spec["chain"]) if spec.get("chain") else None,
    )
    for name in variants:  # parse every variant now: a typo fails here, not after hours of the grid
        variant = variant_arguments(grid, name, {}, Path("unused"), Path("unused"))
        if grid.chain is not None:
            for fraction in grid.chain.label_fractions:
                chain_arguments(grid, variant, fraction, Path("unused"))
    return grid


def load_chain(path: Path, spec: dict[str, Any]) -> Chain:
    """The grid's `chain`, its names checked (its runs' settings are parsed with each variant's).

    Raises:
        UsageError: for an unknown key, no fraction or no fine-tuning run, a name that cannot be a folder's, or a
            distillation whose teacher is not one of the fine-tuning runs.
    """
    unknown = sorted(set(spec) - set(CHAIN_KEYS))
    if unknown:
        raise UsageError(f"{path}: chain has unknown keys {unknown}; it has {', '.join(CHAIN_KEYS)}.")
    chain = Chain(
        [float(fraction) for fraction in spec.get("label_fractions") or []],
        dict(spec.get("settings") or {}),
        {str(name): dict(settings or {}) for name, settings in (spec.get("finetune") or {}).items()},
        {str(name): dict(settings or {}) for name, settings in (spec.get("distill") or {}).items()},
    )
    if not chain.label_fractions or not chain.finetune:
        raise UsageError(f"{path}: chain needs label_fractions and at least one finetune run.")
    for name, settings in chain.distill.items():
        if settings.get("teacher") not in chain.finetune:
            raise UsageError(
                f"{path}: chain distill {name!r} has teacher {settings.get('teacher')!r}; name one of the finetune "
                f"runs {list(chain.finetune)}."
            )
    for name in (*chain.finetune, *chain.distill):
        if (
            not name
            or name.startswith(".")
            or "/" in name
            or name in chain.finetune
            and name in chain.distill
        ):
            raise UsageError(f"{path}: chain run name {name!r} must be one folder name, used once.")
    return chain


@dataclass
class ChainRun:
    """One fine-tuning or distillation of a variant's chain: its name, job and parsed arguments."""

    name: str
    job: str  # "finetune" or "distill"
    arguments: Any  # FinetuneArguments or DistillArguments
    training: Any  # TrainerArguments


def chain_arguments(
    grid: Grid, variant: VariantArguments, fraction: float, chain_dir: Path
) -> list[ChainRun]:
    """The fine-tuning runs and then the distillations of `variant`'s chain at `fraction`, parsed as their
    scripts parse them: from the variant's model folder and its evaluation's data, into `chain_dir/<run>`.

    Raises:
        UsageError: naming the chain run and what is wrong.
    """
    from ..finetuning.arguments import DistillArguments, FinetuneArguments, TrainerArguments

    chain, evaluation = grid.chain, variant.evaluation
    data = {name: getattr(evaluation, name) for name in DATASET_FLAGS}
    data["subset_seed"] = evaluation.seed  # the probe's subsets (finetune.py's --subset_seed says so)
    runs = []
    for job, specs, arguments in (
        ("finetune", chain.finetune, FinetuneArguments),
        ("distill", chain.distill, DistillArguments),
    ):
        for name, settings in specs.items():
            merged = {
                **data,
                **chain.settings,
                **settings,
                "output_dir": str(chain_dir / chain.run_name(name, fraction)),
            }
            if job == "finetune":
                merged |= {"model_name_or_path": variant.training.output_dir, "label_fraction": fraction}
            else:
                merged["teacher"] = str(chain_dir / chain.run_name(settings["teacher"], fraction))
            known = {f.name for cls in (arguments, TrainerArguments) for f in dataclasses.fields(cls)}
            unknown = sorted(set(merged) - known)
            if unknown:
                raise UsageError(
                    f"{grid.path}: chain {job} {name!r} sets {unknown}, which {job}.py does not take."
                )
            parsed = _parse_chain_run(
                arguments, TrainerArguments, merged, f"{grid.path}: chain {job} {name!r}"
            )
            runs.append(ChainRun(chain.run_name(name, fraction), job, *parsed))
    return runs


def _parse_chain_run(
    arguments: type, trainer: type, settings: dict[str, Any], source: str
) -> tuple[Any, Any]:
    """`settings` parsed as the script parses its command line: a folder not written yet is taken (the chain
    writes it before the run), everything else checked."""
    import argparse

    from transformers import HfArgumentParser

    from ..paths import local_path

    placeholders = {key: "." for key in ("model_name_or_path", "teacher") if key in settings}
    placeholders = {
        key: value
        for key, value in placeholders.items()
        if local_path(settings[key]) is not None and not Path(settings[key]).is_dir()
    }
    argv = [
        item for key, value in {**settings, **placeholders}.items() for item in flag_arguments(key, value)
    ]
    try:
        parsed, training = HfArgumentParser(
            (arguments, trainer), exit_on_error=False
        ).parse_args_into_dataclasses(args=argv)
        training.check()
    except (argparse.ArgumentError, ValueError) as error:
        raise UsageError(f"{source}: {error}") from error
    for key in placeholders:
        setattr(parsed, key, settings[key])
    return parsed, training


@dataclass
class VariantArguments:
    """Everything one variant runs with."""

    model: ModelArguments
    data: DataArguments
    training: PretrainingArguments
    evaluation: LinearProbeArguments  # of the model folder `training.output_dir`, once pretraining wrote it
    overrides: dict[str, Any]  # the grid's, the command line's and the variant's, merged
    chain: dict[str, Any] | None = None  # the grid's chain, as written (its results depend on it)

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
        if self.chain is not None:
            settings["chain"] = self.chain
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
    chain = dataclasses.asdict(grid.chain) if grid.chain is not None else None
    return VariantArguments(model_args, data_args, training_args, evaluation_args, overrides, chain)


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
