"""A script: its argument dataclasses parsed and checked, then the library function it runs; a user's mistake
printed under its usage.

[`Command`] is what every script of `scripts/` calls: the job it names is imported only after the arguments
are parsed and checked, so that `--help` and an argument error need no torch; a [`UsageError`] at any point
is printed under the usage with exit code 2, a stop signal or Ctrl-C with what to do next.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import stop_signals
from .arguments import UsageError, recipe_arguments
from .collective import ProcessFailed
from .conditions import declared, describe, refuse_typed
from .folder_format import NoSpaceLeft
from .folder_hold import folder_holds


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
            (the probe's `--dataset_name`), shown as required.

    A setting that applies only under a condition declares it beside its field ([`hf_simclr.conditions`]):
    `--help` says when it applies, and a typed one whose condition fails is refused when parsed.
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
        conditional = declared(self.arguments)
        for action in parser._actions:
            if action.dest in conditional and action.help is not None:
                action.help = f"{action.help} {describe(conditional[action.dest][0])}"
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
        """The dataclasses of a command line, every check that needs no data done; exits 2 on a mistake.

        In order: a flag no option takes, then a typed setting whose condition fails (before its own value is
        checked: leaving it out is the fix either way), then each value, then the checks that need torch."""
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = self.parser()
        try:
            expanded = self.expand(argv)
            settings, unknown = parser.parse_known_args(
                expanded
            )  # before any value's check: a wrong flag first
            if unknown:
                raise UsageError(self.unknown_arguments(unknown, parser))
            refuse_typed(self.arguments, settings, typed_settings(parser, argv))
            arguments = tuple(parser.parse_args_into_dataclasses(args=expanded))
            for instance in arguments:
                if hasattr(instance, "check"):  # the checks that need torch (a config, a recipe)
                    instance.check()
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
        except (FloatingPointError, ProcessFailed) as error:  # a run stopped, on every process alike
            print(f"\n{self.name}: stopped: {error}", file=sys.stderr)
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


def typed_settings(parser: Any, argv: Sequence[str]) -> set[str]:
    """The settings typed on the command line `argv` (not a recipe's), by field name (`--no_write_card`: `write_card`)."""
    options = parser._option_string_actions
    flags = (item.split("=", 1)[0] for item in argv if item.startswith("--"))
    return {options[flag].dest for flag in flags if flag in options}
