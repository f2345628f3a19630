"""One rule for when a setting applies (`hf_simclr.conditions`), run for every condition every script declares.

A setting that takes effect only under a condition declares it once, in its dataclass's `APPLIES`. The cases
below are generated from those declarations, so a new conditional setting is covered without a new test:

- typed on the command line where its condition fails on the other settings, it is refused when parsed (exit 2,
  naming the setting, its condition and the fix); where the condition holds, it is taken;
- at start-up (the device, the processes, the labels known), `<flag>_applied` records what was applied, and a
  setting given that does not apply is noted, or refused where declared so;
- `--help` says when it applies.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
from pathlib import Path

import pytest
from builders import save_tiny_dataset, tiny_pretraining

from hf_simclr.arguments import UsageError
from hf_simclr.benchmark.command import BENCHMARK
from hf_simclr.conditions import Applies, applied_settings, declared, describe, refuse_typed
from hf_simclr.evaluation.command import LINEAR_PROBE, SNAPSHOT_CURVE
from hf_simclr.experiments.command import RUN_EXPERIMENTS
from hf_simclr.finetuning.command import DISTILL, FINETUNE
from hf_simclr.hub import PUSH
from hf_simclr.pretraining.command import PRETRAIN
from hf_simclr.reports.command import RENDER, TABLE
from hf_simclr.timm_export import EXPORT

REPO_ROOT = Path(__file__).resolve().parents[1]

# Every script, with the options it requires (so that only the conditional setting is in question).
REQUIRED = {
    PRETRAIN: [],
    LINEAR_PROBE: ["--model_name_or_path", "runs/x", "--dataset_name", "data/x"],
    SNAPSHOT_CURVE: ["--model_name_or_path", "runs/x", "--dataset_name", "data/x"],
    FINETUNE: ["--model_name_or_path", "runs/x", "--dataset_name", "data/x", "--output_dir", "runs/y"],
    DISTILL: ["--teacher", "runs/x", "--dataset_name", "data/x", "--output_dir", "runs/y"],
    RUN_EXPERIMENTS: ["grid.yaml", "--results_dir", "results/x"],
    EXPORT: ["--model_dir", "runs/x"],
    PUSH: ["--model_dir", "runs/x", "--repo_id", "org/x"],
    BENCHMARK: ["--mode", "data"],
    TABLE: [],
    RENDER: [],
}
# The conditional settings found so far in each script: none may lose its declaration (others may be added).
EXPECTED = {
    PRETRAIN: {
        *("backbone", "cifar_stem", "backbone_kwargs", "projection_layers", "projection_hidden_dim"),
        *("projection_dim", "projection_batch_norm", "loss_temperature"),
        *("dataset_config_name", "dataset_revision", "eval_split", "max_eval_samples", "label_column"),
        *("keep_decoded_on", "dataloader_num_workers", "stored_image_size", "decoded_cache_dir"),
        *("preprocessing_num_workers", "num_train_epochs", "momentum", "mixed_precision", "sync_batchnorm"),
        *("checkpoints_total_limit", "knn_every_epochs", "knn_k", "hub_model_id", "hub_private_repo"),
    },
    LINEAR_PROBE: {
        *("dataset_config_name", "dataset_revision", "holdout_fraction", "label_fractions", "plots"),
        *("skip_baseline", "write_card", "model_revision"),
    },
    SNAPSHOT_CURVE: {"dataset_config_name", "dataset_revision", "holdout_fraction"},
    FINETUNE: {"dataset_config_name", "dataset_revision", "model_revision", "overwrite_output_dir", "fp16"},
    DISTILL: {"labeled_loss_weight", "teacher_logits_cache_dir", "overwrite_output_dir", "fp16"},
    RUN_EXPERIMENTS: {"work_dir", "dataset_name", "variants", "override", "time_budget_minutes"},
    PUSH: {"license"},
    BENCHMARK: {
        *("mode", "dataset_name", "split", "num_workers", "batch_size", "cifar_batches", "stl10_batches"),
        *("stl10_samples", "work_dir", "cases", "cpu_workers", "memory_settings", "memory_backbone"),
        *(
            "memory_image_size",
            "memory_steps",
            "decode_workers",
            "decode_cifar_samples",
            "decode_photo_samples",
        ),
    },
    EXPORT: set(),
    TABLE: set(),
    RENDER: set(),
}
CASES = [
    (command, name, applies, default)
    for command in REQUIRED
    for name, (applies, default) in declared(command.arguments).items()
]
IDS = [f"{command.name}-{name}" for command, name, _, _ in CASES]


def settings_of(command, example: dict) -> argparse.Namespace:
    """The command's parsed values (its required options and defaults), with `example`'s settings set (its
    placeholders: the default, some value given, a save_to_disk folder)."""
    settings, _ = command.parser().parse_known_args(command.expand(REQUIRED[command]))
    for key, value in example.items():
        if key.startswith("fact:") or value == "<default>":
            continue
        if value == "<given>":
            value = "given"
        elif value == "<saved>":
            value = str(saved_dataset())
        setattr(settings, key, value)
    return settings


@functools.cache
def saved_dataset():
    return save_tiny_dataset(Path(tempfile.mkdtemp()) / "saved", per_class=(1, 1))


def facts_of(example: dict) -> dict[str, bool]:
    return {key[5:]: value for key, value in example.items() if key.startswith("fact:")}


def asked(applies: Applies, default):
    """A value of the setting that asks for something (not its off value), other than its default where it can."""
    if applies.for_values:
        return applies.for_values[0]
    if isinstance(default, bool):
        return next(value for value in (not default, default) if value != applies.off_value)
    if isinstance(default, (int, float)):
        return default + 1
    return [1] if isinstance(default, list) else "given"


def test_every_conditional_setting_found_so_far_is_declared():
    for command, names in EXPECTED.items():
        missing = names - set(declared(command.arguments))
        assert not missing, f"{command.name}: {missing} no longer declare when they apply"


@pytest.mark.parametrize(("command", "name", "applies", "default"), CASES, ids=IDS)
def test_a_condition_reads_settings_of_its_own_command(command, name, applies, default):
    settings = settings_of(command, {})
    assert hasattr(settings, name)
    for other in applies.condition.settings():
        assert hasattr(settings, other), (
            f"{command.name}: --{name}'s condition reads --{other}, not one of its"
        )
    met, unmet = applies.condition.examples()
    assert applies.condition.holds(settings_of(command, met), facts_of(met) or None)
    assert not applies.condition.holds(settings_of(command, unmet), facts_of(unmet) or {"_": True})


@pytest.mark.parametrize(("command", "name", "applies", "default"), CASES, ids=IDS)
def test_a_typed_setting_is_refused_when_parsed_where_its_condition_fails_and_taken_where_it_holds(
    command, name, applies, default
):
    met, unmet = applies.condition.examples()
    if not applies.condition.known_when_parsed() and facts_of(unmet):
        pytest.skip(f"--{name}'s condition fails on a fact of the start-up only (tested at start-up below)")
    value = asked(applies, default)
    failing = settings_of(command, unmet)
    setattr(failing, name, value)
    with pytest.raises(UsageError) as refusal:
        refuse_typed(command.arguments, failing, {name})
    message = str(refusal.value)
    assert message.startswith(f"--{name} ") and applies.condition.says() in message and "leave" in message
    holding = settings_of(command, met)
    setattr(holding, name, value)
    refuse_typed(command.arguments, holding, {name})
    refuse_typed(command.arguments, failing, set())  # not typed (a recipe's, a default): not refused


@pytest.mark.parametrize(("command", "name", "applies", "default"), CASES, ids=IDS)
def test_at_start_up_a_setting_is_recorded_as_applied_and_said_when_given_and_not_applied(
    command, name, applies, default
):
    met, unmet = applies.condition.examples()
    value = asked(applies, default)
    holding = settings_of(command, met)
    setattr(holding, name, value)
    applied, notes = applied_settings(command.arguments, holding, facts_of(met))
    assert applied[f"{name}_applied"] == value and not [note for note in notes if f"--{name} " in note]
    failing = settings_of(command, unmet)
    setattr(failing, name, value)
    if applies.refuse:
        with pytest.raises(UsageError, match=f"--{name} "):
            applied_settings(command.arguments, failing, facts_of(unmet))
        return
    applied, notes = applied_settings(command.arguments, failing, facts_of(unmet))
    assert applied[f"{name}_applied"] == applies.off_value
    said = [note for note in notes if note.startswith(f"Note: --{name} ")]
    assert said == [] if value == default and not applies.said_at_default else len(said) == 1, notes
    assert all("is not applied" in note and applies.condition.says() in note for note in said)


@pytest.mark.parametrize("command", REQUIRED, ids=lambda command: command.name)
def test_the_help_says_when_each_conditional_setting_applies(command):
    text = " ".join(command.parser().format_help().split())
    for name, (applies, _) in declared(command.arguments).items():
        assert " ".join(describe(applies).split()) in text, f"{command.name} --{name}"


@pytest.mark.parametrize(
    ("command", "argv", "message"),
    [
        (
            PRETRAIN,
            ["--knn_every_epochs", "0", "--knn_k", "20"],
            "--knn_k 20 applies with --knn_every_epochs above 0",
        ),
        (
            PRETRAIN,
            ["--dataloader_num_workers", "8"],
            "--dataloader_num_workers 8 applies with --augment_on cpu",
        ),
        (PRETRAIN, ["--hub_model_id", "org/x"], "--hub_model_id org/x applies with --push_to_hub"),
        (
            PRETRAIN,
            ["--model_name_or_path", ".", "--backbone", "resnet50"],
            "--backbone resnet50 applies without",
        ),
        (LINEAR_PROBE, ["--features", "z", "--plots"], "--plots true applies with --features h or both"),
        (
            FINETUNE,
            ["--model_name_or_path", ".", "--model_revision", "v1"],
            "a local folder has no revisions",
        ),
        (BENCHMARK, ["--num_workers", "4", "--mode", "decode"], "--num_workers 4 applies with --mode data"),
        (PUSH, ["--no_write_card", "--license", "mit"], "--license mit applies with --write_card true"),
    ],
    ids=[
        "pretrain-knn_k",
        "pretrain-workers",
        "pretrain-hub",
        "pretrain-config",
        "probe",
        "finetune",
        "benchmark",
        "push",
    ],
)
def test_each_script_refuses_such_a_setting_on_its_command_line_and_takes_it_from_a_recipe(
    command, argv, message, tmp_path, capsys
):
    # Before: each was taken, recorded, and never applied, without a word.
    with pytest.raises(SystemExit) as exit_info:
        command.parse([*REQUIRED[command], *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_recipe_may_hold_settings_a_run_does_not_apply():
    recipe = (
        "knn_k: 20\ndataloader_num_workers: 8\n"  # a recipe serves many runs: noted at start-up, not refused
    )
    _, data_args, args = PRETRAIN.parse([write(recipe), "--knn_every_epochs", "0"])
    assert args.knn_k == 20 and data_args.dataloader_num_workers == 8


def write(text: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    return handle.name


def test_a_run_records_what_it_applied_and_says_what_it_did_not(tmp_path, capsys):
    # An unlabeled training split: the default kNN monitor cannot vote, and GPU views use no DataLoader workers.
    data = save_tiny_dataset(tmp_path / "data", per_class=(8, 2), labeled=False)
    tiny_pretraining(
        tmp_path / "run",
        data,
        {"dataloader_num_workers": 2},
        knn_every_epochs=10,
        max_steps=3,
        checkpointing_steps="none",
    )
    console = capsys.readouterr().out
    assert "Note: --dataloader_num_workers 2 is not applied: it applies with --augment_on cpu" in console
    assert (
        "Note: --knn_every_epochs 10 is not applied" in console
        and "the training split has no labels" in console
    )
    record = json.loads((tmp_path / "run" / "training_args.json").read_text())
    assert record["knn_every_epochs"] == 10 and record["knn_every_epochs_applied"] == 0
    assert record["dataloader_num_workers"] == 2 and record["dataloader_num_workers_applied"] is None
    # the request beside what was applied (before: the applied value in place of the request)
    assert record["augment_on"] == "auto" and record["augment_on_applied"] == "gpu"
    assert record["torch_compile"] is None and record["torch_compile_applied"] is False


def test_the_runner_refuses_a_variants_setting_that_would_not_apply_and_takes_the_grids_protocol(tmp_path):
    # A grid's `overrides` are its protocol (a recipe: noted at start-up); `--override` and a variant's own
    # settings are typed for the run, and its `evaluation:` for the probe.
    from hf_simclr.experiments.grid import load_grid, variant_arguments

    base = (REPO_ROOT / "configs" / "cifar10-resnet18-reference.yaml").as_posix()
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"base: {base}\noverrides: {{knn_every_epochs: 0, knn_k: 5}}\nvariants:\n  a: {{}}\n")
    loaded = load_grid(grid)
    with pytest.raises(UsageError, match="--knn_k 5 applies with --knn_every_epochs above 0"):
        variant_arguments(loaded, "a", {"knn_k": 5}, tmp_path, tmp_path)
    grid.write_text(f"base: {base}\nvariants:\n  a: {{knn_every_epochs: 0, knn_k: 5}}\n")
    with pytest.raises(UsageError, match="variant 'a'.*--knn_k 5 applies with --knn_every_epochs above 0"):
        load_grid(grid)
    grid.write_text(f"base: {base}\nevaluation: {{features: z, plots: true}}\nvariants:\n  a: {{}}\n")
    with pytest.raises(UsageError, match="evaluation: --plots true applies with --features h or both"):
        load_grid(grid)
