"""When a setting applies: the one rule, and its one check.

A setting that takes effect only under a condition (another setting's value, the device, the number of
processes, the data having labels) declares that condition once, in its dataclass, beside its fields::

    APPLIES: ClassVar[dict[str, Applies]] = {
        "dataloader_num_workers": Applies(setting_is("augment_on", "cpu"), "GPU views use none"),
    }

(a dataclass may declare it for a field it inherits and reads under a condition of its own: pretraining's
`--eval_split`, the dataset's setting, serves only its kNN monitor). Everything else follows from the
declaration:

- `--help` says when each such setting applies ([`describe`], added by `Command`);
- [`refuse_typed`], when the command line is parsed: a setting typed there whose condition is already known
  to fail (a condition on other settings) is refused, naming the setting, the condition and the fix;
- [`applied_settings`], when a job starts and knows what only then is known (the device, the processes, the
  labels): `<flag>_applied` of every conditional setting for the run's record (its value, or its off value
  where its condition fails), a note for each setting given (typed, in a recipe, or from Python: a value
  other than its default) that is not applied, and a refusal for one declared `refuse=True`.

`tests/test_conditions.py` enumerates the declarations of every script and runs each, so a new conditional
setting is covered without a new test. Imports no torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .arguments import UsageError
from .folder_format import DATASET_FILES
from .paths import local_path

# What a job knows at start-up, and how a message says it: {fact: (when it holds, when it does not)}.
FACTS = {
    "cuda": ("on a CUDA device", "there is no CUDA device here"),
    "several_processes": ("with several processes", "this run has one process"),
    "labels": ("when the training split has labels", "the training split has no labels"),
}
_UNSET = (None, False, "", [], ())


class Condition:
    """What must hold for a setting to apply: [`holds`] on the command's settings (and, at start-up, the job's
    facts; a fact not known yet counts as holding), said as a message says it."""

    def holds(self, settings: Any, facts: Mapping[str, Any] | None) -> bool:
        raise NotImplementedError

    def says(self) -> str:
        """The condition, after "applies": `with --augment_on cpu`."""
        raise NotImplementedError

    def state(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        """Why it fails here: `--augment_on is gpu`."""
        raise NotImplementedError

    def fix(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        """What makes it hold: `give --augment_on cpu`."""
        raise NotImplementedError

    def settings(self) -> tuple[str, ...]:
        """The settings it reads."""
        return ()

    def known_when_parsed(self) -> bool:
        """Whether it reads settings only (no fact of the start-up)."""
        return True

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(values that make it hold, values that make it fail): settings by name, facts as `fact:<name>`; read
        by the test that runs every declaration."""
        raise NotImplementedError


@dataclass(frozen=True)
class OnSetting(Condition):
    """A condition on another setting's value: [`accepts`] says which values, `wanted` says them (`cpu`, `above
    0`), and the message follows: "applies with --augment_on cpu, and here --augment_on is gpu"."""

    name: str

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    @property
    def wanted(self) -> str:
        raise NotImplementedError

    def holds(self, settings: Any, facts: Mapping[str, Any] | None) -> bool:
        return self.accepts(getattr(settings, self.name))

    def says(self) -> str:
        return f"with --{self.name} {self.wanted}"

    def state(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        return f"--{self.name} is {_text(getattr(settings, self.name))}"

    def fix(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        return f"give --{self.name} {self.wanted}"

    def settings(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True)
class SettingIs(OnSetting):
    """Another setting has one of `values` (`among`: the values it can take, for the test's failing example,
    when its default is one of `values`)."""

    values: tuple[Any, ...] = ()
    among: tuple[Any, ...] = ()

    def accepts(self, value: Any) -> bool:
        return value in self.values

    @property
    def wanted(self) -> str:
        return " or ".join(map(_text, self.values))

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        other = next((value for value in self.among if value not in self.values), _DEFAULT)
        return {self.name: self.values[0]}, {self.name: other}


@dataclass(frozen=True)
class SettingIsNot(OnSetting):
    """Another setting has none of `values` (`--checkpointing_steps` other than none)."""

    values: tuple[Any, ...] = ()

    def accepts(self, value: Any) -> bool:
        return value not in self.values

    @property
    def wanted(self) -> str:
        return f"other than {' or '.join(map(_text, self.values))}"

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {self.name: _DEFAULT}, {self.name: self.values[0]}


@dataclass(frozen=True)
class SettingAbove(OnSetting):
    """Another setting is above `bound` (`--knn_every_epochs` above 0: the monitor is on)."""

    bound: float = 0

    def accepts(self, value: Any) -> bool:
        return value is not None and value > self.bound

    @property
    def wanted(self) -> str:
        return f"above {_text(self.bound)}"

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {self.name: self.bound + 1}, {self.name: self.bound}


@dataclass(frozen=True)
class SeveralValues(OnSetting):
    """Another setting, a list, has several values (`--weight_decays`: a choice to make on held-out rows)."""

    def accepts(self, value: Any) -> bool:
        return value is not None and len(value) > 1

    @property
    def wanted(self) -> str:
        return "of several values"

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {self.name: [1, 2]}, {self.name: [1]}


@dataclass(frozen=True)
class SettingGiven(OnSetting):
    """Another setting is given (a flag on, a value set: not None, False or empty); `given=False`: not given
    (`--model_name_or_path` unset: a fresh model is built from the flags)."""

    given: bool = True

    def accepts(self, value: Any) -> bool:
        return (value not in _UNSET) == self.given

    def says(self) -> str:
        return f"with --{self.name}" if self.given else f"without --{self.name}"

    def fix(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        return f"give --{self.name}" if self.given else f"leave --{self.name} out"

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return ({self.name: _GIVEN}, {self.name: None})[:: 1 if self.given else -1]


@dataclass(frozen=True)
class SameFolder(OnSetting):
    """Another setting, a folder, is unset or the folder that `other` names (`--output_dir` is the model
    folder)."""

    other: str = ""

    def holds(self, settings: Any, facts: Mapping[str, Any] | None) -> bool:
        value, other = getattr(settings, self.name), getattr(settings, self.other)
        return value in _UNSET or Path(value).expanduser().resolve() == Path(other).expanduser().resolve()

    def says(self) -> str:
        return f"when --{self.name} is --{self.other} (the default)"

    def fix(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        return f"leave --{self.name} out"

    def settings(self) -> tuple[str, ...]:
        return (self.name, self.other)

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {self.name: None}, {self.name: "elsewhere"}


# What a dataset's or model's name names: a Hub id, a local folder datasets builds, or a save_to_disk folder.
SOURCE_KINDS = {"hub": "a Hub id", "folder": "a local folder of files", "saved": "a save_to_disk folder"}


def source_kind(name: str) -> str:
    """`hub`, `folder` or `saved` ([`SOURCE_KINDS`]), by the package's one rule ([`local_path`])."""
    path = local_path(name)
    if path is None:
        return "hub"
    return "saved" if any((path / file).is_file() for file in DATASET_FILES) else "folder"


@dataclass(frozen=True)
class Source(OnSetting):
    """Another setting names one of `kinds` of source (a revision pins a Hub repository's commit; a
    configuration is `datasets`' way of building a dataset, which a save_to_disk folder has no use for)."""

    kinds: tuple[str, ...] = ("hub",)

    def accepts(self, value: Any) -> bool:
        return value is not None and source_kind(value) in self.kinds

    @property
    def wanted(self) -> str:
        return " or ".join(SOURCE_KINDS[kind] for kind in self.kinds)

    def state(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        value = getattr(settings, self.name)
        return f"--{self.name} {value} is {SOURCE_KINDS[source_kind(value)]}"

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        other = next(kind for kind in SOURCE_KINDS if kind not in self.kinds)
        return {self.name: _EXAMPLE_SOURCES[self.kinds[0]]}, {self.name: _EXAMPLE_SOURCES[other]}


# A name of each kind, for the examples ("<saved>": a save_to_disk folder, which the test makes).
_EXAMPLE_SOURCES = {"hub": "org/name", "folder": ".", "saved": "<saved>"}


@dataclass(frozen=True)
class Fact(Condition):
    """What a job knows only when it starts (`FACTS`: the device, the processes, the labels)."""

    name: str

    def holds(self, settings: Any, facts: Mapping[str, Any] | None) -> bool:
        return bool((facts or {}).get(self.name, True))  # not known yet (when parsed): holds

    def says(self) -> str:
        return FACTS[self.name][0]

    def state(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        return FACTS[self.name][1]

    def fix(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        return f"run it {FACTS[self.name][0]}"

    def known_when_parsed(self) -> bool:
        return False

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {f"fact:{self.name}": True}, {f"fact:{self.name}": False}


@dataclass(frozen=True)
class AllOf(Condition):
    """Every one of `parts` holds (each part's examples make the others hold)."""

    parts: tuple[Condition, ...]

    def holds(self, settings: Any, facts: Mapping[str, Any] | None) -> bool:
        return all(part.holds(settings, facts) for part in self.parts)

    def says(self) -> str:
        return " and ".join(part.says() for part in self.parts)

    def state(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        return "; ".join(
            part.state(settings, facts) for part in self.parts if not part.holds(settings, facts)
        )

    def fix(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        failing = [part for part in self.parts if not part.holds(settings, facts)]
        return " and ".join(part.fix(settings, facts) for part in failing)

    def settings(self) -> tuple[str, ...]:
        return tuple(name for part in self.parts for name in part.settings())

    def known_when_parsed(self) -> bool:
        return all(part.known_when_parsed() for part in self.parts)

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        met = {key: value for part in self.parts for key, value in part.examples()[0].items()}
        return met, {**met, **self.parts[0].examples()[1]}


@dataclass(frozen=True)
class AnyOf(Condition):
    """At least one of `parts` holds."""

    parts: tuple[Condition, ...]

    def holds(self, settings: Any, facts: Mapping[str, Any] | None) -> bool:
        return any(part.holds(settings, facts) for part in self.parts)

    def says(self) -> str:
        return " or ".join(part.says() for part in self.parts)

    def state(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        return "; ".join(part.state(settings, facts) for part in self.parts)

    def fix(self, settings: Any, facts: Mapping[str, Any] | None) -> str:
        return " or ".join(part.fix(settings, facts) for part in self.parts)

    def settings(self) -> tuple[str, ...]:
        return tuple(name for part in self.parts for name in part.settings())

    def known_when_parsed(self) -> bool:
        return all(part.known_when_parsed() for part in self.parts)

    def examples(self) -> tuple[dict[str, Any], dict[str, Any]]:
        unmet = {key: value for part in self.parts for key, value in part.examples()[1].items()}
        return {**unmet, **self.parts[0].examples()[0]}, unmet


# Placeholders of the examples: the setting's default, and some value that counts as given.
_DEFAULT, _GIVEN = "<default>", "<given>"


def setting_is(name: str, *values: Any, among: tuple[Any, ...] = ()) -> SettingIs:
    """`name` has one of `values`."""
    return SettingIs(name, values, among)


def all_of(*parts: Condition) -> AllOf:
    return AllOf(parts)


def any_of(*parts: Condition) -> AnyOf:
    return AnyOf(parts)


@dataclass(frozen=True)
class Applies:
    """When a setting applies: its `condition`, and how the rule treats it.

    Args:
        condition ([`Condition`]): what must hold.
        note (`str`, *optional*): what the setting is for, said when it is refused or noted (`"the kNN
            monitor's neighbours; the probe's are scripts/linear_probe.py --knn_k"`).
        for_values (`tuple`, *optional*): the condition concerns only these values of the setting (`fp16` of
            `--mixed_precision`); others always apply.
        refuse (`bool`, defaults to False): at start-up too, refuse a given setting whose condition fails,
            instead of a note (what would run is not what the record says: fp16 without CUDA).
        off (`Any`, *optional*): `<flag>_applied` where the condition fails (defaults to None: not applied), and
            the value that asks for nothing (`0` of `--knn_every_epochs`: never refused, never noted).
        said_at_default (`bool`, defaults to False): note it at start-up even at its default value (a part of
            the run the user expects, such as the kNN monitor, that does not run here).
    """

    condition: Condition
    note: str = ""
    for_values: tuple[Any, ...] = ()
    refuse: bool = False
    off: Any = _DEFAULT
    said_at_default: bool = False

    def concerns(self, value: Any) -> bool:
        """Whether the condition concerns `value` of the setting: not its off value (which asks for nothing:
        `--knn_every_epochs 0`), and one of `for_values` when given."""
        return value != self.off_value and (not self.for_values or value in self.for_values)

    @property
    def off_value(self) -> Any:
        return None if self.off is _DEFAULT else self.off


def declared(argument_classes: Iterable[type]) -> dict[str, tuple[Applies, Any]]:
    """Every conditional setting of a command's dataclasses, `{name: (applies, default)}`: each class's `APPLIES`
    (a subclass's declaration of a field wins over its base's)."""
    found: dict[str, tuple[Applies, Any]] = {}
    for cls in argument_classes:
        defaults = {f.name: _default(f) for f in dataclasses.fields(cls)}
        for klass in reversed(cls.__mro__):
            for name, applies in vars(klass).get("APPLIES", {}).items():
                found[name] = (applies, defaults[name])
    return found


def describe(applies: Applies) -> str:
    """The sentence `--help` adds to a conditional setting's help."""
    values = f" ({' or '.join(map(_text, applies.for_values))})" if applies.for_values else ""
    return f"Applies{values} {applies.condition.says()}."


def refuse_typed(argument_classes: Iterable[type], settings: Any, typed: set[str]) -> None:
    """Refuse a setting typed on the command line whose condition fails on the other settings (a fact of the
    start-up, not known yet, counts as holding).

    Args:
        settings: the parsed values, by attribute (an `argparse.Namespace` or the dataclasses, see [`Settings`]).
        typed (`set[str]`): the settings typed on the command line (not a recipe's: a recipe serves many runs).

    Raises:
        UsageError: naming the setting, its condition, why it fails here and the two ways out.
    """
    for name, (applies, _) in declared(argument_classes).items():
        value = getattr(settings, name)
        if name in typed and applies.concerns(value) and not applies.condition.holds(settings, None):
            raise UsageError(refusal(name, value, applies, settings, None))


def applied_settings(
    argument_classes: Iterable[type], settings: Any, facts: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """At start-up: `<flag>_applied` of every conditional setting of a job's dataclasses, and a note for each
    given setting (a value other than its default) that is not applied.

    Args:
        settings: the job's values, by attribute (a dataclass, or several as one: [`Settings`]).
        facts (`Mapping`): what the job knows now (`FACTS`); one it does not name counts as holding.

    Raises:
        UsageError: for a setting declared `refuse=True` whose condition fails.
    """
    applied, notes = {}, []
    for name, (applies, default) in declared(argument_classes).items():
        value = getattr(settings, name)
        holds = not applies.concerns(value) or applies.condition.holds(settings, facts)
        applied[f"{name}_applied"] = value if holds else applies.off_value
        if holds or value == default and not applies.said_at_default:  # not asked for: recorded, not said
            continue
        if applies.refuse:
            raise UsageError(refusal(name, value, applies, settings, facts))
        reason = applies.condition.state(settings, facts)
        note = f" ({applies.note})" if applies.note else ""
        notes.append(
            f"Note: --{name} {_text(value)} is not applied: it applies {applies.condition.says()}, and here "
            f"{reason}{note}."
        )
    return applied, notes


def refusal(name: str, value: Any, applies: Applies, settings: Any, facts: Mapping[str, Any] | None) -> str:
    """`--knn_k 20 applies with --knn_every_epochs above 0, and here --knn_every_epochs is 0 (...): leave
    --knn_k out, or give --knn_every_epochs above 0.`"""
    note = f" ({applies.note})" if applies.note else ""
    return (
        f"--{name} {_text(value)} applies {applies.condition.says()}, and here "
        f"{applies.condition.state(settings, facts)}{note}: leave --{name} out, or {applies.condition.fix(settings, facts)}."
    )


class Settings:
    """The settings of several dataclasses read as one: `settings.knn_every_epochs` finds the field in
    whichever holds it (a condition may read a setting of another dataclass of its command)."""

    def __init__(self, *arguments: Any) -> None:
        self._arguments = arguments

    def __getattr__(self, name: str) -> Any:
        for instance in self._arguments:
            if name in {f.name for f in dataclasses.fields(instance)}:
                return getattr(instance, name)
        raise AttributeError(name)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _text(value: Any) -> str:
    """A value as typed on the command line (`true`, `none`, `0.5`, `a b`)."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return " ".join(map(_text, value))
    return f"{value:g}" if isinstance(value, float) else str(value)
