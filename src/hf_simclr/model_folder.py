"""The folders the package writes, as files: their names, atomic writes, saving and reading a model folder.

A model folder written by [`save_model_folder`] holds the weights (safetensors), `config.json` with an
`auto_map`, the modeling code for `trust_remote_code` (`CODE_FILES`), and a `preprocessor_config.json`, so
that `AutoModel`, `AutoImageProcessor` and `pipeline("image-feature-extraction")` all work on it. Around it,
the runs add their records (training arguments, log, results, cards, plots, checkpoints): every name a
folder's file goes by is defined in `folder_format`, once, with the one atomic writer every file goes through.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .arguments import UsageError
from .folder_format import (
    CONFIG_FILE,
    IMAGE_PROCESSOR_FILE,
    TRAINING_ARGS_FILE,
    staged_files,
    write_json_atomically,
    write_text_atomically,
)
from .paths import local_path, offline_unless_reachable

if TYPE_CHECKING:  # imported where used: the file names above need no torch
    from transformers import PreTrainedModel

    from .augmentation import AugmentationConfig
    from .configuration_simclr import SimCLRConfig
    from .image_processing_simclr import SimCLRImageProcessor
    from .modeling_simclr import SimCLRForImageClassification, SimCLRModel

# ----------------------------------------------------------------------------------------------
# File names
# ----------------------------------------------------------------------------------------------

CODE_FILES = (
    "configuration_simclr.py",
    "modeling_simclr.py",
    "loss.py",
    "image_processing_simclr.py",
    "image_view.py",  # the evaluation view only: the training augmentation stays in the package
)
# The license a card and a timm export record unless told otherwise: the project's (pyproject.toml), as a
# Hub license id.
DEFAULT_LICENSE = "apache-2.0"

# The first words of every Markdown file the package writes (cards, tables): a file without them is a user's,
# which a generated one never replaces.
GENERATED_MARK = "<!-- Written by hf_simclr"
# What the files written before the mark existed hold instead (the card's template, the runner's table).
LEGACY_MARKS = ("- **Code:** `hf_simclr`; the modeling code", "<!-- Written by scripts/run_experiments.py")


# ----------------------------------------------------------------------------------------------
# Writing files whole
# ----------------------------------------------------------------------------------------------


def is_generated(path: str | Path) -> bool:
    """Whether `path` is a file the package wrote (it holds `GENERATED_MARK`), or no file at all."""
    path = Path(path)
    if not path.is_file():
        return True
    text = path.read_text(encoding="utf-8", errors="replace")
    return any(mark in text for mark in (GENERATED_MARK, *LEGACY_MARKS))


def check_generated(path: str | Path, keep_advice: str) -> None:
    """Refuse to replace a file the package did not write.

    Args:
        keep_advice (`str`): how to go on while keeping the file, e.g. "pass --write_card false".

    Raises:
        UsageError: naming the file, and the two ways out (keep it, or move it away).
    """
    if not is_generated(path):
        raise UsageError(
            f"{path} was not written by hf_simclr (no '{GENERATED_MARK}' line), so it is kept: {keep_advice}, "
            f"or move it away to have it written."
        )


def write_generated_text(path: str | Path, text: str, keep_advice: str) -> Path:
    """[`write_text_atomically`] of a generated file (`text` must hold `GENERATED_MARK`): never over a user's.

    Raises:
        UsageError: from [`check_generated`]; nothing is written.
    """
    check_generated(path, keep_advice)
    return write_text_atomically(path, text)


DAMAGED_ADVICE = "a write cut short (a killed run, a full disk) leaves such a file: write it again with the script that made it, or restore it"


def read_json(path: str | Path) -> Any:
    """The JSON content of `path`, or None when there is no such file: the one reader of the JSON files the
    package writes (config, image processor, training arguments, results, the runner's records).

    Raises:
        UsageError: for a file that cannot be read whole (empty, truncated), naming it.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        raise UsageError(
            f"{path} cannot be read ({type(error).__name__}: {error}); {DAMAGED_ADVICE}."
        ) from error


def read_json_lines(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file such as `log_history.jsonl` (blank lines skipped).

    A partial last line, what a run killed while appending leaves, is left out: the records before it are
    whole. A damaged line elsewhere is refused.

    Raises:
        UsageError: naming the file and the line.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as error:
            if number == len(lines):
                break  # cut short by a kill: the records before it stand
            raise UsageError(f"{path}, line {number}, cannot be read ({error}); {DAMAGED_ADVICE}.") from error
    return records


# ----------------------------------------------------------------------------------------------
# Saving a model folder
# ----------------------------------------------------------------------------------------------


def image_processor_for(augmentation: AugmentationConfig) -> SimCLRImageProcessor:
    """The image processor of a model trained with `augmentation`: its evaluation view (size, statistics)."""
    from .image_processing_simclr import SimCLRImageProcessor

    return SimCLRImageProcessor(
        image_size=augmentation.image_size, image_mean=augmentation.mean, image_std=augmentation.std
    )


def save_model_folder(
    model: PreTrainedModel,
    output_dir: str | Path,
    augmentation: AugmentationConfig,
    training_args: dict[str, Any] | None = None,
) -> Path:
    """Save `model`, its image processor and the training arguments into `output_dir`.

    Every file is first written into a temporary folder beside the target and then moved into place
    with `os.replace`, so that no file in `output_dir` is ever half-written.

    Args:
        model (`PreTrainedModel`): a SimCLR model (its code files and `auto_map` are written too).
        output_dir (`str` or `Path`): destination folder; created if needed, other files left alone.
        augmentation (`AugmentationConfig`): gives the image size and normalisation of the processor.
        training_args (`dict`, *optional*): written as `training_args.json`.

    Returns:
        `Path` of `output_dir`.
    """
    from transformers.utils import logging as transformers_logging

    output_dir = Path(output_dir)
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # "Writing model shards" for one small file says nothing
    try:
        with staged_files(output_dir) as staging:
            model.save_pretrained(staging, safe_serialization=True)
            image_processor_for(augmentation).save_pretrained(staging)
            if training_args is not None:
                write_json_atomically(staging / TRAINING_ARGS_FILE, training_args)
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
    return output_dir


# ----------------------------------------------------------------------------------------------
# Reading a model folder (local or on the Hub) back: config, encoder, evaluation view.
# ----------------------------------------------------------------------------------------------


def resolve_model_file(
    model_name_or_path: str | Path, filename: str, revision: str | None = None
) -> Path | None:
    """Path of `filename` in a local model folder or a Hub repository (downloaded to the cache).

    Args:
        model_name_or_path (`str` or `Path`): a local folder or a Hub model id.
        filename (`str`): a file of the folder, e.g. `"config.json"`.
        revision (`str`, *optional*): Hub branch, tag or commit (ignored for a local folder).

    Returns:
        The file's `Path`, or None when the folder or repository has no such file (or, offline, when
        the file is not in the cache).
    """
    local = local_path(model_name_or_path)
    if local is not None:  # a folder, or a local path that is not one (then no file of it exists)
        path = local / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError

    try:
        with offline_unless_reachable():  # one failed connection, not five retries
            return Path(hf_hub_download(str(model_name_or_path), filename, revision=revision))
    except (EntryNotFoundError, LocalEntryNotFoundError, HFValidationError):
        return None


def load_simclr_config(
    model_name_or_path: str | Path, revision: str | None = None, flag: str = "model_name_or_path"
) -> SimCLRConfig:
    """Read the `SimCLRConfig` of a model folder, refusing anything that is not a SimCLR model.

    Args:
        flag (`str`): the caller's flag for the folder, which the messages name.

    Raises:
        UsageError: if there is no `config.json` (not a model folder, a wrong path, or a Hub id that
            is neither cached nor reachable), or its `model_type` is not `"simclr"`.
    """
    from .configuration_simclr import SimCLRConfig

    path = resolve_model_file(model_name_or_path, CONFIG_FILE, revision)
    if path is None:
        raise UsageError(
            f"--{flag} {model_name_or_path}: no {CONFIG_FILE} found, so it is not a model folder. Pass the folder "
            f"written by pretraining (config.json, model.safetensors, ...) or a Hub id of a SimCLR model "
            f"(offline, the repository must already be in the Hugging Face cache)."
        )
    try:
        config_dict = json.loads(path.read_text())
    except (ValueError, OSError) as error:
        raise UsageError(
            f"--{flag} {model_name_or_path}: {path} is not valid JSON ({error}); re-save the model folder."
        ) from error
    model_type = config_dict.get("model_type")
    if model_type != SimCLRConfig.model_type:
        raise UsageError(
            f"--{flag} {model_name_or_path} holds a {model_type!r} model ({CONFIG_FILE} model_type), not a SimCLR "
            f"model ('simclr'). Pass a folder written by hf_simclr's pretraining."
        )
    return SimCLRConfig.from_dict(config_dict)


def load_encoder(
    model_name_or_path: str | Path, revision: str | None = None, flag: str = "model_name_or_path"
) -> SimCLRModel:
    """Load the encoder f(.) of a SimCLR model folder (a pretraining checkpoint or an encoder), in eval mode.

    Args:
        model_name_or_path (`str` or `Path`): a local folder or a Hub model id.
        revision (`str`, *optional*): Hub branch, tag or commit.

    Returns:
        [`SimCLRModel`] in eval mode; its forward gives h as `pooler_output` `(B, hidden_size)`.

    Raises:
        UsageError: if the folder is not a SimCLR model, its weights cannot be read, or they lack encoder
            tensors (which would otherwise be left randomly initialised).
    """
    from transformers.utils import logging as transformers_logging

    from .modeling_simclr import SimCLRModel

    load_simclr_config(model_name_or_path, revision, flag)
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # a pretraining folder's head weights are expected extras
    try:
        with weights_errors(model_name_or_path, flag):
            encoder, info = SimCLRModel.from_pretrained(
                model_name_or_path, revision=revision, output_loading_info=True
            )
    finally:
        transformers_logging.set_verbosity(verbosity)
    check_loaded_weights(
        info,
        model_name_or_path,
        flag,
        "Pass a folder saved from SimCLRModel or SimCLRForPreTraining.",
        what="encoder tensors",
        allowed_unexpected=("projection_head.", "classifier."),  # a pretraining or fine-tuned folder's head
    )
    return encoder.eval()


CLASSIFIER_ARCHITECTURE = "SimCLRForImageClassification"


def is_classifier_folder(config: SimCLRConfig) -> bool:
    """Whether a folder's config was saved from a classifier (fine-tuned or distilled), not from pretraining."""
    return CLASSIFIER_ARCHITECTURE in (config.architectures or [])


def check_classifier_head_layers(
    layers: int | None, projection_layers: int | None, model_name_or_path: str | Path, flag: str
) -> None:
    """Refuse `--classifier_head_layers` beyond the model's projection head (`projection_layers` of its config;
    None when not known yet, e.g. a Hub id before it is read).

    Raises:
        UsageError: naming the flag, the model's head and the largest value it takes.
    """
    if layers is None:
        return
    if not isinstance(layers, int) or layers < 0:
        raise UsageError(
            f"--classifier_head_layers {layers} must be an integer >= 0 (0: the classifier reads h; 1: the "
            f"first layer of the projection head, SimCLR v2's choice with a 3-layer head)."
        )
    if projection_layers is not None and layers > projection_layers:
        raise UsageError(
            f"--classifier_head_layers {layers}: --{flag} {model_name_or_path} has a projection head of "
            f"{projection_layers} layer(s), so the classifier can keep at most {projection_layers} (0: from h); "
            f"pretrain with --projection_layers 3 (configs/cifar10-resnet18-v2.yaml) for SimCLR v2's recipe."
        )


def local_projection_layers(model_name_or_path: str | Path) -> int | None:
    """`projection_layers` of a local model folder's config.json, read as JSON (no torch); None for a Hub id
    or a folder without a config (its own check says so)."""
    local = local_path(model_name_or_path)
    config = read_json(local / CONFIG_FILE) if local is not None and local.is_dir() else None
    return config.get("projection_layers", 2) if isinstance(config, dict) else None


def load_classifier(
    model_name_or_path: str | Path,
    flag: str,
    revision: str | None = None,
    new_classifier: bool = True,
    **config_changes: Any,
) -> SimCLRForImageClassification:
    """The one loading of a [`SimCLRForImageClassification`] from a folder, its weights checked.

    The encoder must load, and so must the projection head's first `classifier_head_layers` layers (the
    folder's config, or `config_changes`): a folder without them (an encoder alone, a head of fewer layers)
    is refused rather than left with a random head. The projection head's other layers are dropped.

    Args:
        flag (`str`): the caller's flag for the folder, which the messages name.
        new_classifier (`bool`, defaults to True): the linear classifier may be missing (fine-tuning from a
            pretraining folder); False: it must load too (a fine-tuned teacher).
        config_changes: config values for the classifier, e.g. `classifier_head_layers=1`, `id2label=...`.

    Raises:
        UsageError: for a folder that is not a SimCLR model, a `classifier_head_layers` the head cannot give,
            or weights that lack tensors or hold unexpected ones.
    """
    from transformers.utils import logging as transformers_logging

    from .modeling_simclr import SimCLRForImageClassification

    config = load_simclr_config(model_name_or_path, revision, flag)
    layers = config_changes.get("classifier_head_layers", config.classifier_head_layers)
    check_classifier_head_layers(layers, config.projection_layers, model_name_or_path, flag)
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # a new classifier and a dropped head are checked below
    try:
        with weights_errors(model_name_or_path, flag):
            model, info = SimCLRForImageClassification.from_pretrained(
                model_name_or_path, revision=revision, output_loading_info=True, **config_changes
            )
    finally:
        transformers_logging.set_verbosity(verbosity)
    head = f" and the first {layers} layer(s) of the projection head" if layers else ""
    check_loaded_weights(
        info,
        model_name_or_path,
        flag,
        f"Pass a folder written by pretraining{' (with its projection head)' if layers else ''} or by "
        f"finetune.py{', or --classifier_head_layers 0' if layers else ''}.",
        what=f"tensors of the encoder{head}{'' if new_classifier else ' and the classifier'}",
        allowed_missing=("classifier.",) if new_classifier else (),
        allowed_unexpected=("projection_head.",),  # the head's layers after the kept ones
    )
    return model


def check_loaded_weights(
    info: dict[str, Any],
    model_name_or_path: str | Path,
    flag: str,
    fix: str,
    what: str = "tensors",
    allowed_missing: tuple[str, ...] = (),
    allowed_unexpected: tuple[str, ...] = (),
) -> None:
    """The one check after `from_pretrained(..., output_loading_info=True)`: no tensor left random or dropped.

    Args:
        info (`dict`): the loading info (`missing_keys`, `unexpected_keys`).
        fix (`str`): what to pass instead, the message's last sentence.
        what (`str`): what the model's tensors are called in the message, e.g. "encoder tensors".
        allowed_missing, allowed_unexpected (`tuple[str, ...]`): key prefixes that may be missing (newly
            initialised on purpose, e.g. a new classifier) or unexpected (dropped on purpose, e.g. a head).

    Raises:
        UsageError: naming `--flag`, the path, a few keys and `fix`.
    """
    missing = sorted(key for key in info.get("missing_keys", ()) if not key.startswith(allowed_missing))
    if missing:
        raise UsageError(
            f"--{flag} {model_name_or_path}: the weights lack {len(missing)} {what} (e.g. {missing[:3]}), "
            f"which would stay random. {fix}"
        )
    unexpected = sorted(
        key for key in info.get("unexpected_keys", ()) if not key.startswith(allowed_unexpected)
    )
    if unexpected:
        raise UsageError(
            f"--{flag} {model_name_or_path}: the weights hold {len(unexpected)} tensors the model has no place for "
            f"(e.g. {unexpected[:3]}), which would be dropped. {fix}"
        )


@contextmanager
def weights_errors(model_name_or_path: str | Path, flag: str) -> Iterator[None]:
    """The errors of reading a folder's weights (missing, truncated, not safetensors) as a [`UsageError`].

    Inside the block transformers' own "Loading weights" bar and load report are quiet: the package checks
    what loaded itself ([`check_loaded_weights`]) and says what matters.
    """
    from safetensors import SafetensorError
    from transformers.utils import logging as transformers_logging

    bar, verbosity = transformers_logging.is_progress_bar_enabled(), transformers_logging.get_verbosity()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        yield
    except UsageError:
        raise
    except (
        OSError,
        ValueError,
        RuntimeError,
        SafetensorError,
    ) as error:  # missing, truncated, not safetensors
        raise UsageError(
            f"--{flag} {model_name_or_path}: cannot read the model's weights ({type(error).__name__}: {error}). "
            f"The folder needs a complete model.safetensors, as hf_simclr's save_model_folder writes it: "
            f"save or download it again."
        ) from error
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bar:
            transformers_logging.enable_progress_bar()


def eval_augmentation_for(
    model_name_or_path: str | Path, config: SimCLRConfig | None = None, revision: str | None = None
) -> AugmentationConfig:
    """The image size and normalisation the model was trained with, for `EvalTransform`.

    Read from the folder's `preprocessor_config.json`; without one, from the config's `image_size`
    with ImageNet statistics (a warning says so).

    Returns:
        `AugmentationConfig` whose `image_size`, `mean` and `std` are the model's (other fields default).
    """
    from .augmentation import IMAGENET_MEAN, IMAGENET_STD, AugmentationConfig

    path = resolve_model_file(model_name_or_path, IMAGE_PROCESSOR_FILE, revision)
    if path is not None:
        processor = read_json(path)
        size = processor.get("size") or {}  # folders saved before SimCLRImageProcessor: ViTImageProcessor
        image_size = (
            processor.get("image_size")
            or size.get("height")
            or size.get("shortest_edge")
            or (processor.get("crop_size") or {}).get("height")
        )
        mean, std = processor.get("image_mean"), processor.get("image_std")
        if image_size and mean and std:
            return AugmentationConfig(image_size=int(image_size), mean=tuple(mean), std=tuple(std))
    config = config or load_simclr_config(model_name_or_path, revision)
    warnings.warn(
        f"{model_name_or_path}: no usable {IMAGE_PROCESSOR_FILE}; evaluating at the config's image_size="
        f"{config.image_size} with ImageNet mean/std. Re-save the folder with save_model_folder to fix it.",
        stacklevel=2,
    )
    return AugmentationConfig(image_size=config.image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
