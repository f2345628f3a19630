"""What pretraining says on the console: the time it will take, the kNN monitor's result, where it saved the
model; and the settings a run cannot honour, refused before the work instead of silently not applied."""

from __future__ import annotations

import json

import pytest
import torch
from builders import save_tiny_dataset, tiny_pretraining

from hf_simclr.arguments import UsageError
from hf_simclr.devices import resolve_mixed_precision
from hf_simclr.pretraining.loop import format_duration
from hf_simclr.pretraining.setup import check_tracker


def test_a_run_says_its_estimated_time_its_knn_result_and_where_it_saved_the_model(tmp_path, capsys):
    data = save_tiny_dataset(tmp_path / "data", per_class=(8, 2))
    output_dir = tmp_path / "run"
    tiny_pretraining(
        output_dir, data, {"eval_split": "test"}, knn_every_epochs=1, knn_k=3, checkpointing_steps="none"
    )
    out, err = capsys.readouterr()
    console = out + err
    assert "Estimate from the first 3 steps:" in console and "for the remaining 3 steps" in console, console
    assert "epoch 1: kNN top-1 " in console and "epoch 2: kNN top-1 " in console, console
    assert f"Saved the model to {output_dir} after 6 steps" in console, console
    assert "\x1b[A" not in console  # no cursor movements of nested bars in a redirected log
    if not torch.cuda.is_available():
        assert "views made on cpu (--augment_on gpu)" in console
        assert "device cpu in fp32 (--mixed_precision auto)" in console
        assert "Note: no GPU here" not in console  # a run this small is the CPU-sized check itself
    # Beside a request the run resolved or could not apply, what it did (before: "auto", and SyncBatchNorm
    # recorded as on for a run of one process)
    record = json.loads((output_dir / "training_args.json").read_text())
    assert record["mixed_precision"] == "auto" and record["sync_batchnorm"] is True
    assert record["mixed_precision_applied"] == ("bf16" if torch.cuda.is_available() else "no")
    assert record["sync_batchnorm_applied"] is False  # one process: its BatchNorm is the batch's already
    assert record["keep_decoded_on_applied"] == "device" and record["dataloader_num_workers_applied"] is None
    assert record["knn_every_epochs_applied"] == 1


def test_a_gpu_sized_run_on_a_cpu_says_so_and_gives_the_cpu_sized_command():
    from types import SimpleNamespace

    from hf_simclr.pretraining.setup import describe_run

    said = []
    accelerator = SimpleNamespace(
        print=said.append, device=torch.device("cpu"), mixed_precision="no", num_processes=1
    )
    plan = SimpleNamespace(
        global_batch=512,
        local_batch=512,
        world_size=1,
        total_steps=9700,
        peak_learning_rate=1.2,
        warmup_steps=0,
    )
    args = SimpleNamespace(
        optimizer="lars",
        output_dir="runs/x",
        warmup_epochs=10,
        knn_every_epochs=0,
        chunk_size=None,
        mixed_precision="auto",
        sync_batchnorm=True,
    )
    describe_run(accelerator, plan, args, SimpleNamespace(name="gpu"), range(50000), None, None, 32, [])
    assert any("Note: no GPU here: 9700 steps of 512 images at 32px" in line for line in said), said
    assert any("--max_train_samples 1024 --image_size 16" in line for line in said), said


def test_durations_read_as_hours_minutes_or_seconds():
    assert [format_duration(s) for s in (40, 720, 12000)] == ["40 s", "12 min", "3 h 20 min"]


def test_fp16_on_a_cpu_is_refused_before_any_work_instead_of_computing_fp32_under_an_fp16_record(monkeypatch):
    from hf_simclr.pretraining.command import PRETRAIN
    from hf_simclr.pretraining.setup import check_here

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    arguments = PRETRAIN.parse(["--mixed_precision", "fp16"])  # a GPU recipe parses anywhere
    with pytest.raises(
        UsageError, match="--mixed_precision fp16 applies on a CUDA device.*bf16 applies on a CPU"
    ):
        check_here(*arguments)
    check_here(*PRETRAIN.parse(["--mixed_precision", "bf16"]))
    assert resolve_mixed_precision("bf16") == "bf16"


def test_a_tracker_that_is_not_installed_is_refused_naming_the_package(monkeypatch):
    import accelerate.tracking

    # whatever this machine has installed: accelerate's list of the trackers it can use, without wandb
    monkeypatch.setattr(accelerate.tracking, "_available_trackers", [accelerate.utils.LoggerType.TENSORBOARD])
    with pytest.raises(UsageError, match="--report_to wandb: wandb is not installed.*pip install wandb"):
        check_tracker("wandb")
    check_tracker("none")
    check_tracker("all")


def test_the_usage_line_shows_the_first_positional_item():
    from hf_simclr.experiments.command import RUN_EXPERIMENTS
    from hf_simclr.pretraining.command import PRETRAIN

    assert PRETRAIN.usage() == "pretrain.py [-h] [recipe.yaml] [options]"
    assert RUN_EXPERIMENTS.usage() == "run_experiments.py [-h] GRID --results_dir RESULTS_DIR [options]"


def test_loading_a_model_folder_prints_no_library_bar_or_load_report(tmp_path, capfd):
    from builders import save_tiny_model

    from hf_simclr.evaluation.features import load_frozen_model

    folder = save_tiny_model(tmp_path / "model")
    capfd.readouterr()
    load_frozen_model(str(folder))
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "LOAD REPORT" not in (out + err).upper(), out + err


def test_finetune_help_shows_the_scripts_own_settings_first_under_their_own_title():
    from hf_simclr.finetuning.command import FINETUNE

    text = FINETUNE.parser().format_help().split("\n\n", 1)[1]  # below the usage line
    own, trainer = text.index("finetune.py's settings"), text.index("Trainer's settings")
    assert own < text.index("--model_name_or_path") < text.index("--label_fraction") < trainer
    assert trainer < text.index("--per_device_train_batch_size")


@pytest.mark.parametrize("command_name", ["LINEAR_PROBE", "SNAPSHOT_CURVE"])
def test_an_evaluation_on_a_device_this_machine_lacks_is_refused_before_the_data(
    command_name, tmp_path, monkeypatch, capsys
):
    # Before: --device cuda on a machine without a GPU loaded the data, then failed with a traceback.
    import hf_simclr.evaluation.command as evaluation

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    argv = ["--model_name_or_path", str(tmp_path), "--dataset_name", "data/x", "--device", "cuda"]
    with pytest.raises(SystemExit) as exit_info:
        getattr(evaluation, command_name).parse(argv)
    assert exit_info.value.code == 2
    assert "--device cuda: torch sees 0 cuda device(s) on this machine" in capsys.readouterr().err
    getattr(evaluation, command_name).parse(argv[:-1] + ["cpu"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--report_to", "wandb"], "--report_to wandb: wandb is not installed"),
        (["--push_to_hub"], "--push_to_hub: Trainer would push its checkpoints"),
        (["--hub_model_id", "org/x"], "--hub_model_id is a setting of Trainer's upload"),
        (["--do_train"], "--do_train without --do_eval: finetune.py always trains"),
        (["--do_predict"], "--do_predict: finetune.py scores the fine-tuned model"),
    ],
    ids=["tracker-not-installed", "push_to_hub", "hub_model_id", "do_train-alone", "do_predict"],
)
def test_a_trainer_setting_finetuning_would_not_apply_is_refused_when_parsed(
    extra, message, tmp_path, monkeypatch, capsys
):
    # Before: a tracker not installed stopped Trainer with a traceback after the data was loaded; --push_to_hub
    # created a repository and pushed checkpoints only; --hub_* and --do_* were taken and never applied.
    import transformers.integrations

    from hf_simclr.finetuning.command import FINETUNE

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(transformers.integrations, "get_available_reporting_integrations", lambda: [])
    argv = [
        "--model_name_or_path",
        str(tmp_path),
        "--dataset_name",
        "data/x",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    with pytest.raises(SystemExit) as exit_info:
        FINETUNE.parse([*argv, *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    FINETUNE.parse([*argv, "--do_train", "--do_eval"])  # what it does, as Trainer's examples are run


def test_fine_tuning_in_fp16_on_a_cpu_is_refused_before_any_work(tmp_path, monkeypatch):
    # Before: fp16 computed in fp32 under an fp16 record.
    from hf_simclr.finetuning.arguments import FinetuneArguments, TrainerArguments
    from hf_simclr.finetuning.run import check_applied

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = FinetuneArguments(model_name_or_path=str(tmp_path), dataset_name=str(tmp_path))
    with pytest.raises(UsageError, match="--fp16 true applies with --use_cpu false and on a CUDA device"):
        check_applied(args, TrainerArguments(output_dir=str(tmp_path), fp16=True, use_cpu=False))
    check_applied(args, TrainerArguments(output_dir=str(tmp_path), bf16=True, use_cpu=True))


def test_the_runner_refuses_a_setting_of_a_run_with_summary_only(tmp_path, capsys):
    # Before: `--summary_only --override num_train_epochs=1` rewrote the table and ignored the override.
    from hf_simclr.experiments.command import RUN_EXPERIMENTS

    (tmp_path / "recipe.yaml").write_text("optimizer: sgd\n")
    (tmp_path / "grid.yaml").write_text("base: recipe.yaml\nvariants:\n  a: {}\n")
    argv = [str(tmp_path / "grid.yaml"), "--results_dir", str(tmp_path / "results"), "--summary_only"]
    with pytest.raises(SystemExit) as exit_info:
        RUN_EXPERIMENTS.parse([*argv, "--override", "num_train_epochs=1"])
    assert exit_info.value.code == 2
    assert "--override num_train_epochs=1 applies with --summary_only false" in capsys.readouterr().err
    RUN_EXPERIMENTS.parse(argv)


def test_the_benchmark_refuses_a_setting_of_another_mode_and_training_without_a_gpu(monkeypatch, capsys):
    # Before: `--mode decode --num_workers 4` timed the decode workers' default and ignored --num_workers;
    # `--mode training` on a CPU ran its GPU-sized steps for hours.
    from hf_simclr.benchmark.command import BENCHMARK, run_on_this_machine

    with pytest.raises(SystemExit) as exit_info:
        BENCHMARK.parse(["--mode", "decode", "--num_workers", "4"])
    message = capsys.readouterr().err
    assert (
        exit_info.value.code == 2
        and "--num_workers 4 applies with --mode data, and here --mode is decode" in message
    )
    BENCHMARK.parse(["--mode", "decode", "--decode_workers", "4", "--split", "test"])  # its own: taken
    assert "Applies with --mode data or decode." in " ".join(BENCHMARK.parser().format_help().split())

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (args,) = BENCHMARK.parse(["--mode", "training"])  # a documented command parses on any machine
    with pytest.raises(UsageError, match="--mode training applies on a CUDA device.*would run for hours"):
        run_on_this_machine(args)
