"""One vocabulary: the dataset, augmentation and model settings are declared once and every job takes them."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from hf_simclr import SimCLRConfig
from hf_simclr.arguments import UsageError
from hf_simclr.augmentation import FLAGS, IMAGENET_MEAN, IMAGENET_STD, AugmentationConfig, augmentation_preset
from hf_simclr.dataset_arguments import DATASET_FLAGS, EVALUATION_SHARES, DatasetArguments
from hf_simclr.evaluation.arguments import LinearProbeArguments
from hf_simclr.finetuning.arguments import FinetuneArguments
from hf_simclr.image_processing_simclr import SimCLRImageProcessor
from hf_simclr.pretraining.data_arguments import DataArguments
from hf_simclr.pretraining.model_arguments import CLI_SETTINGS, ModelArguments


def names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("job", [DataArguments, LinearProbeArguments, FinetuneArguments])
def test_every_job_takes_the_one_dataset_declaration(job):
    assert issubclass(job, DatasetArguments) and set(DATASET_FLAGS) <= names(job)
    assert "train_split" not in EVALUATION_SHARES and set(EVALUATION_SHARES) - {
        "preprocessing_num_workers"
    } < set(DATASET_FLAGS)


def test_the_model_flags_are_the_configs_settings_with_its_defaults():
    parameters = inspect.signature(SimCLRConfig.__init__).parameters
    settings = {name for name in parameters if name not in ("self", "kwargs", "image_size")}
    assert names(ModelArguments) == settings | {"model_name_or_path"}
    defaults = {f.name: f.default for f in dataclasses.fields(ModelArguments)}
    for name in settings - set(CLI_SETTINGS):
        assert defaults[name] == parameters[name].default, name
    help = {f.name: f.metadata["help"] for f in dataclasses.fields(ModelArguments)}
    assert "NT-Xent" in help["loss_temperature"]  # the config's own documentation


def test_every_recipe_flag_is_a_pretraining_flag_and_fine_tuning_takes_its_two():
    assert set(FLAGS) <= names(DataArguments)
    assert {"crop_scale_min", "horizontal_flip_p"} <= names(FinetuneArguments)
    assert not {"color_jitter_strength", "blur_p"} & names(FinetuneArguments)


# One value outside each flag's range: refused by the flag (when parsed) with the config's own range.
OUT_OF_RANGE = {
    "image_size": 4,
    "crop_scale_min": 0.0,
    "crop_scale_max": 1.5,
    "horizontal_flip_p": 1.5,
    "color_jitter_strength": 3.0,
    "color_jitter_p": -0.1,
    "grayscale_p": 2.0,
    "blur_p": -1.0,
}


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_each_recipe_flag_is_checked_against_its_fields_range(flag):
    with pytest.raises(UsageError, match=rf"--{flag} {OUT_OF_RANGE[flag]} must be"):
        DataArguments(**{flag: OUT_OF_RANGE[flag]})
    field, position = FLAGS[flag].field, FLAGS[flag].position
    value = OUT_OF_RANGE[flag]
    if position is not None:
        value = (value, 1.0) if position == 0 else (0.5, value)
    with pytest.raises(ValueError, match=rf"{field}=.* must be"):
        AugmentationConfig(**{field: value})


def test_a_minimum_crop_above_the_maximum_names_both_flags():
    with pytest.raises(UsageError, match="--crop_scale_min 0.9 is above --crop_scale_max 0.5"):
        DataArguments(crop_scale_min=0.9, crop_scale_max=0.5).augmentation()


@pytest.mark.parametrize(
    "settings",
    [
        {"crop_ratio": (2.0, 1.0)},
        {"blur_sigma": (0.0, 1.0)},
        {"blur_kernel_fraction": 1.5},
        {"std": (1, 0, 1)},
    ],
)
def test_the_config_holds_the_ranges_the_gpu_ops_need(settings):
    with pytest.raises(ValueError, match="must be"):
        AugmentationConfig(**settings)


def test_flags_set_override_the_preset_and_unset_ones_keep_it():
    recipe = DataArguments(preset="stl10", color_jitter_strength=0.3, crop_scale_min=0.2).augmentation()
    assert recipe == augmentation_preset("stl10", color_jitter_strength=0.3, crop_scale=(0.2, 1.0))


def test_the_image_processors_default_normalisation_is_the_recipes():
    processor = SimCLRImageProcessor()
    assert tuple(processor.image_mean) == IMAGENET_MEAN and tuple(processor.image_std) == IMAGENET_STD
