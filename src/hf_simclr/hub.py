"""Writing a model folder that loads everywhere, and sharing it on the Hugging Face Hub.

A folder written by [`save_model_folder`] holds the weights (safetensors), `config.json` with an
`auto_map`, the modeling code for `trust_remote_code`, and a `preprocessor_config.json`, so that
`AutoModel`, `AutoImageProcessor` and `pipeline("image-feature-extraction")` all work on it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, ViTImageProcessor

from .transforms import AugmentationConfig

TRAINING_ARGS_FILE = "training_args.json"


def image_processor_for(augmentation: AugmentationConfig) -> ViTImageProcessor:
    """The image processor that matches the training views: resize to `image_size`, rescale, normalise."""
    size = augmentation.image_size
    return ViTImageProcessor(
        do_resize=True,
        size={"height": size, "width": size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(augmentation.mean),
        image_std=list(augmentation.std),
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
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-save-", dir=output_dir))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        image_processor_for(augmentation).save_pretrained(staging)
        if training_args is not None:
            (staging / TRAINING_ARGS_FILE).write_text(json.dumps(training_args, indent=2, default=str) + "\n")
        for path in staging.iterdir():
            os.replace(path, output_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir
