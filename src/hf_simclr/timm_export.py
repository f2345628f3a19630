"""A copy of a SimCLR encoder in timm's own format, for models whose backbone is a stock timm architecture.

After [`export_timm`], a model folder (and its Hub repository after a push) loads in timm too:

    timm.create_model("local-dir:<folder>/timm", pretrained=True)   # a local folder
    timm.create_model("hf-hub:<org>/<name>", pretrained=True)       # the pushed repository

and gives h, the pooled features of [`SimCLRModel`], directly (`num_classes=0`).

Why a `timm/` subfolder: timm's `local-dir:` loader and transformers both read `<folder>/config.json`
and then `<folder>/model.safetensors` first, and the two want different tensors under different names
(transformers: `backbone.conv1.weight`, ... plus the projection head of a pretraining folder; timm:
`conv1.weight`, ... loaded strictly). One config.json can serve both (timm reads `architecture` and
`pretrained_cfg`, which transformers ignores), one weights file cannot; hiding timm's weights under a
name only timm looks for (`open_clip_model.safetensors`, a pickled `pytorch_model.bin`) would mislabel
them. So the timm copy lives in `<folder>/timm/` (its own config.json and model.safetensors), and the
folder's config.json carries timm's keys with `hf_hub_filename` pointing into that subfolder, which is
what `hf-hub:` follows. `local-dir:<folder>` itself fails with timm's missing-keys error.

A CIFAR-stem encoder (3x3 stride-1 first convolution, no max-pool) is not a stock timm architecture:
no timm model name builds it, so it cannot be exported ([`timm_export_problem`] says why).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .arguments import UsageError
from .command import Command
from .folder_format import (
    CONFIG_FILE,
    IMAGE_PROCESSOR_FILE,
    TIMM_SUBFOLDER,
    WEIGHTS_FILE,
    WEIGHTS_SUFFIX,
    staged_folder,
    write_json_atomically,
)
from .model_folder import (
    CLASSIFIER_ARCHITECTURE,
    DEFAULT_LICENSE,
    eval_augmentation_for,
    load_encoder,
    load_simclr_config,
    read_json,
)
from .paths import READ_DIR, WRITE_DIR, check_path

if TYPE_CHECKING:
    from .augmentation import AugmentationConfig
    from .configuration_simclr import SimCLRConfig

# Fields of timm's pretrained_cfg that describe timm's own ImageNet weights, not these.
_SOURCE_FIELDS = (
    "tag",
    "paper_ids",
    "paper_name",
    "origin_url",
    "notes",
    "test_input_size",
    "test_crop_pct",
    "pool_size",
    "hf_hub_id",
    "url",
    "file",
    "source",
)


@dataclass
class ExportArguments:
    """Arguments of `scripts/export_timm.py`."""

    model_dir: str = field(metadata={"help": "The SimCLR model folder (pretraining output)."})
    license: str = field(default=DEFAULT_LICENSE, metadata={"help": "License recorded in timm's config."})

    def __post_init__(self) -> None:
        check_path("model_dir", self.model_dir, READ_DIR)
        check_path("model_dir", self.model_dir, WRITE_DIR)  # the timm/ copy is written into it


def export(args: ExportArguments) -> Path:
    """`scripts/export_timm.py`: [`export_timm`], and how to load the copy."""
    folder = export_timm(args.model_dir, license=args.license)
    print(f"timm copy written to {folder}: timm.create_model('local-dir:{folder}', pretrained=True)")
    print(f"It holds {timm_export_scope(load_simclr_config(args.model_dir, flag='model_dir'))}.")
    return folder


_MODEL_DIR = "give --model_dir (the SimCLR model folder; the timm copy goes into its timm/ subfolder)"
_THEN_PUSH = "export, then scripts/push_to_hub.py uploads the model folder with its timm/ copy"
# Flags people bring from timm's and transformers' scripts, with this script's way of saying them.
EXPORT_ELSEWHERE_FLAGS = (
    ("model_name_or_path", _MODEL_DIR),
    ("checkpoint", _MODEL_DIR),
    ("output_dir", _MODEL_DIR),
    ("model", "the architecture is read from the config.json of --model_dir: give --model_dir"),
    ("push_to_hub", _THEN_PUSH),
    ("hub_model_id", _THEN_PUSH),
)
# `scripts/export_timm.py`.
EXPORT = Command(
    "export_timm.py",
    (ExportArguments,),
    "hf_simclr.timm_export:export",
    known_elsewhere=EXPORT_ELSEWHERE_FLAGS,
)


def timm_export_problem(config: SimCLRConfig) -> str | None:
    """Why timm cannot load this encoder, or None when it can (a stock timm architecture)."""
    if config.cifar_stem:
        return (
            f"the encoder uses the CIFAR stem (a 3x3 stride-1 first convolution without max-pool, paper "
            f"Appendix B.9), which is not a stock timm architecture: no timm model name builds it, so "
            f"`timm.create_model` cannot load these weights as `{config.backbone}`. Load the encoder with "
            f"transformers' `AutoModel` instead."
        )
    return None


def timm_export_scope(config: SimCLRConfig) -> str:
    """What the timm copy of a folder holds, and what of the folder it leaves out."""
    scope = "the encoder f(.): timm's model gives h, the pooled features (num_classes=0)"
    if CLASSIFIER_ARCHITECTURE in (config.architectures or []):
        kept = config.classifier_head_layers
        head = f"the {kept} projection-head layer(s) it keeps and " if kept else ""
        return (
            f"{scope}; the classifier's {head}linear classifier are not exported (no timm model has them): "
            f"load the whole classifier with transformers' AutoModelForImageClassification"
        )
    return f"{scope}; the projection head g(.) is not exported"


def weights_sha256(model_dir: Path) -> str | None:
    """SHA-256 over the folder's top-level safetensors files (one, or the shards), None without any."""
    files = sorted(model_dir.glob(f"*{WEIGHTS_SUFFIX}"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def export_timm(model_dir: str | Path, license: str = DEFAULT_LICENSE) -> Path:
    """Write the encoder of a SimCLR model folder in timm's format into `<model_dir>/timm/`.

    The weights and config come from `timm.models.save_for_hf` on the backbone (timm's own names); its
    config is then made to describe these weights: the evaluation view of the folder (image size, mean,
    std, resize + center crop), no classifier (`num_classes` 0, and not in `model_args`, where it would
    break transformers' `TimmWrapperModel`), the license, and none of timm's ImageNet-weights fields. The
    folder's own config.json gains timm's keys so that `hf-hub:` works after a push. Everything is written
    under a temporary name and renamed into place; the subfolder before the root config.

    Args:
        model_dir (`str` or `Path`): a local SimCLR model folder (pretraining output or an encoder).
        license (`str`, defaults to `"apache-2.0"`): the license recorded in timm's config.

    Returns:
        `Path` of the `timm/` subfolder.

    Raises:
        UsageError: if the folder is not a SimCLR model, its encoder is not a stock timm architecture, or its
            `timm/` subfolder was not written by this export (it is kept).
    """
    from timm.models import save_for_hf

    model_dir = Path(model_dir)
    config = load_simclr_config(model_dir, flag="model_dir")
    problem = timm_export_problem(config)
    if problem:
        raise UsageError(f"--model_dir {model_dir}: cannot export to timm: {problem}")
    final = model_dir / TIMM_SUBFOLDER
    if final.exists() and "exported_from" not in (read_json(final / CONFIG_FILE) or {}):
        raise UsageError(
            f"--model_dir {model_dir}: {final} was not written by hf_simclr's export, so it is kept; move it "
            f"away to export the encoder there."
        )
    encoder = load_encoder(model_dir, flag="model_dir")
    view = eval_augmentation_for(model_dir, config)
    with staged_folder(final) as staging:  # one name: an export killed half-way is cleared by the next
        model_args = dict(config.backbone_kwargs)
        save_for_hf(encoder.backbone, staging, model_args=model_args or None, safe_serialization=True)
        timm_config = _describe_these_weights(read_json(staging / CONFIG_FILE), model_args, view, license)
        # Ties this copy to the weights it was made from (see timm_export_is_current).
        timm_config["exported_from"] = {"weights_sha256": weights_sha256(model_dir)}
        write_json_atomically(staging / CONFIG_FILE, timm_config)

    root_config = read_json(model_dir / CONFIG_FILE)
    root_config.update(
        {
            key: timm_config[key]
            for key in ("architecture", "num_features", "model_args")
            if key in timm_config
        }
    )
    root_config["pretrained_cfg"] = {
        **timm_config["pretrained_cfg"],
        "hf_hub_filename": f"{TIMM_SUBFOLDER}/{WEIGHTS_FILE}",
    }
    # With `pretrained_cfg` here transformers takes a local folder for a timm checkpoint and reads its image
    # processor from config.json: pointing config.json's auto_map at ours keeps AutoImageProcessor and pipeline
    # working (they then read preprocessor_config.json).
    processor = read_json(model_dir / IMAGE_PROCESSOR_FILE) or {}
    auto_map = (processor.get("auto_map") or {}).get("AutoImageProcessor")
    if auto_map:
        root_config["auto_map"] = {**root_config.get("auto_map", {}), "AutoImageProcessor": auto_map}
    write_json_atomically(model_dir / CONFIG_FILE, root_config)
    return final


def _describe_these_weights(
    timm_config: dict[str, Any], model_args: dict[str, Any], view: AugmentationConfig, license: str
) -> dict[str, Any]:
    """timm's config of `save_for_hf`, made to describe these weights instead of timm's ImageNet ones."""
    timm_config.pop("model_args", None)
    if model_args:
        timm_config["model_args"] = model_args  # what create_model needs; never num_classes
    pretrained_cfg = {k: v for k, v in timm_config["pretrained_cfg"].items() if k not in _SOURCE_FIELDS}
    pretrained_cfg.update(
        input_size=[3, view.image_size, view.image_size],
        interpolation="bilinear",  # the evaluation view: resize the shorter side, center crop
        crop_pct=1.0,
        crop_mode="center",
        mean=list(view.mean),
        std=list(view.std),
        num_classes=0,
        license=license,
        description="SimCLR encoder (hf_simclr): gives h, the pooled features, as SimCLRModel does.",
        paper_ids="arXiv:2002.05709",
    )
    timm_config.update(num_classes=0, pretrained_cfg=pretrained_cfg)
    return timm_config


def timm_export_is_current(model_dir: str | Path) -> bool:
    """Whether the folder holds a timm copy of its current weights that both `local-dir:<folder>/timm`
    and (after a push) `hf-hub:` load: the subfolder, the root config's timm keys, and a weights
    hash that matches `model.safetensors` (a folder re-saved after the export has a stale copy)."""
    model_dir = Path(model_dir)
    timm_config_file = model_dir / TIMM_SUBFOLDER / CONFIG_FILE
    if not (timm_config_file.is_file() and (model_dir / TIMM_SUBFOLDER / WEIGHTS_FILE).is_file()):
        return False
    if "architecture" not in (read_json(model_dir / CONFIG_FILE) or {}):
        return False
    source = (read_json(timm_config_file) or {}).get("exported_from") or {}
    current = weights_sha256(model_dir)
    return current is not None and source.get("weights_sha256") == current
