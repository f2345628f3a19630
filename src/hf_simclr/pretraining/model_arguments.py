"""The architecture of the model a run pretrains: `SimCLRConfig`'s settings, generated from it (every one of its
settings is a flag with its documentation as help), and a model to start from. Nothing heavy is imported here.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..arguments import as_usage_error, check_arguments
from ..conditions import (
    Applies,
    SettingAbove,
    SettingGiven,
    all_of,
)
from ..paths import READ_DIR_OR_HUB, check_path

if TYPE_CHECKING:
    from ..configuration_simclr import SimCLRConfig


def config_settings() -> list[tuple[str, Any, Any]]:
    """`SimCLRConfig`'s settings as dataclass fields `(name, type, field)`, read from its source without
    importing it (that imports torch): each `__init__` parameter with its default and, as its help, the
    class docstring's entry. The view size (`image_size`) comes from the data, not from a flag; the two
    settings whose command line differs from the config say how (`CLI_SETTINGS`)."""
    source = Path(__file__).resolve().parents[1].joinpath("configuration_simclr.py").read_text()
    config = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "SimCLRConfig"
    )
    docs = dict(
        re.findall(r"^ {8}(\w+) \(.*?\):\n((?: {12}.*\n)+)", ast.get_docstring(config, clean=False), re.M)
    )
    init = next(node for node in config.body if isinstance(node, ast.FunctionDef) and node.name == "__init__")
    settings = []
    for argument, default in zip(init.args.args[1:], init.args.defaults, strict=True):
        name = argument.arg
        if name == "image_size":
            continue
        kind, value, note = CLI_SETTINGS.get(
            name, (eval(ast.unparse(argument.annotation), {"Any": Any}), ast.literal_eval(default), "")
        )
        help = " ".join(docs[name].split()) + note
        settings.append((name, kind, field(default=value, metadata={"help": help})))
    return settings


# The config settings whose command line differs from the config: (type, default, note for the help).
CLI_SETTINGS = {
    "cifar_stem": (bool | None, None, " Default on the command line: on for views of at most 64 px."),
    "backbone_kwargs": (
        str | None,
        None,
        """ On the command line: a JSON dict, e.g. '{"drop_path_rate": 0.1}'.""",
    ),
}


_FRESH = SettingGiven("model_name_or_path", given=False)


@dataclass
class _ModelStart:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from this SimCLR folder or Hub id instead of a fresh model."}
    )


@dataclass
class ModelArguments(make_dataclass("ConfigArguments", config_settings(), bases=(_ModelStart,))):
    """Architecture of the model to pretrain: `SimCLRConfig`'s settings (generated from it, so every one of
    its settings is a flag with its documentation as help), and a model to start from."""

    # Every config setting builds a fresh model (a folder given by --model_name_or_path keeps its own config);
    # the projection head's width and BatchNorm apply to a head that has them.
    APPLIES: ClassVar[dict[str, Applies]] = {
        name: Applies(
            all_of(_FRESH, SettingAbove("projection_layers", {"projection_dim": 0}.get(name, 1)))
            if name in ("projection_dim", "projection_hidden_dim", "projection_batch_norm")
            else _FRESH,
            "a model given by --model_name_or_path keeps its own config"
            + (
                "; the head's width and BatchNorm are those of its layers"
                if name.startswith("projection_")
                else ""
            ),
        )
        for name, _, _ in config_settings()
    }

    def __post_init__(self) -> None:
        check_path("model_name_or_path", self.model_name_or_path, READ_DIR_OR_HUB)
        check_arguments(
            self,
            {
                "backbone_kwargs": (
                    self.backbone_kwargs_dict() is not None,
                    """a JSON dict, e.g. '{"drop_path_rate": 0.1}'""",
                ),
            },
        )

    def check(self) -> None:
        """The checks that build the config (torch): every `SimCLRConfig` value, the backbone's name."""
        if self.model_name_or_path is None:
            self.config(image_size=224)  # the view size is checked with the data
            with as_usage_error(MODEL_FLAGS):
                from ..modeling_simclr import create_backbone

                create_backbone(self.config(image_size=224))

    def backbone_kwargs_dict(self) -> dict | None:
        """`--backbone_kwargs` as a dict (None when it is not a JSON dict)."""
        try:
            value = json.loads(self.backbone_kwargs) if self.backbone_kwargs else {}
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def config(self, image_size: int) -> SimCLRConfig:
        """The `SimCLRConfig` these arguments describe, for views of `image_size` pixels.

        Raises:
            UsageError: for a value the config refuses, named as its flag.
        """
        from ..configuration_simclr import SimCLRConfig

        settings = {name: getattr(self, name) for name in CONFIG_FLAGS}
        settings["cifar_stem"] = image_size <= 64 if self.cifar_stem is None else self.cifar_stem
        settings["backbone_kwargs"] = self.backbone_kwargs_dict()
        with as_usage_error(MODEL_FLAGS):
            return SimCLRConfig(**settings, image_size=image_size)


MODEL_FLAGS = tuple(f.name for f in fields(ModelArguments))


CONFIG_FLAGS = tuple(
    f.name for f in fields(ModelArguments) if f.name not in {g.name for g in fields(_ModelStart)}
)
