"""Failures by pattern: every script refuses a bad argument with exit code 2, its own flag and nothing written.

The matrix is generated from the scripts' argument dataclasses: every field gets invalid values of the kinds
its type admits (wrong type, out of range, a missing path, a file where a folder is expected, a folder under
a file), through each script's own parse-and-check function (`Command.parse`), in this process. A new
argument is covered without a new test; one that accepts every value must be declared in `FREE_TEXT`.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
import types
import typing
from pathlib import Path

import pytest
import yaml
from builders import save_tiny_dataset, save_tiny_model

from hf_simclr.benchmark.command import BENCHMARK
from hf_simclr.command import Command
from hf_simclr.evaluation.command import LINEAR_PROBE, SNAPSHOT_CURVE
from hf_simclr.experiments.command import RUN_EXPERIMENTS
from hf_simclr.finetuning.command import DISTILL, FINETUNE
from hf_simclr.hub import PUSH
from hf_simclr.pretraining.command import PRETRAIN
from hf_simclr.reports.command import RENDER, TABLE
from hf_simclr.timm_export import EXPORT

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (
    PRETRAIN,
    LINEAR_PROBE,
    SNAPSHOT_CURVE,
    FINETUNE,
    DISTILL,
    TABLE,
    EXPORT,
    RENDER,
    PUSH,
    RUN_EXPERIMENTS,
    BENCHMARK,
)
# Settings that no value can make wrong when the arguments are parsed: names (split, column, revision, Hub
# ids) are checked when the data or the Hub is read, free text never.
FREE_TEXT = {
    "dataset_config_name",
    "dataset_revision",
    "model_revision",
    "train_split",
    "eval_split",
    "image_column",
    "label_column",
    "hub_model_id",
    "revision",
    "commit_message",
    "token",
    "license",
    "variants",
    "dataset_root",
    "split",
}
# Values the package's own ranges refuse (argparse refuses "x" itself, so a case like that could not fail): zero,
# negative, beyond any range; a bool has no range, so only its type is argparse's to check.
NUMBERS = {int: ["-5", "0", str(10**15)], float: ["-1", "0", "nan", "1e15", "2"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model folder, a dataset, a grid, a results folder, and a plain file: what valid arguments name."""
    root = tmp_path_factory.mktemp("failures")
    model = save_tiny_model(root / "model", log_history=False)
    (model / "results.json").write_text("{}")
    data = save_tiny_dataset(root / "data", per_class=(4, 2))
    (root / "recipe.yaml").write_text("optimizer: sgd\n")
    (root / "grid.yaml").write_text(yaml.safe_dump({"base": "recipe.yaml", "variants": {"a": {}}}))
    (root / "results").mkdir()
    (root / "results" / "published.yaml").write_text("{}\n")
    (root / "file.txt").write_text("not a folder")
    return {
        "root": root,
        "model": model,
        "data": data,
        "grid": root / "grid.yaml",
        "results": root / "results",
        "file": root / "file.txt",
    }


def valid_argv(command: Command, world: dict[str, Path], out: Path) -> list[str]:
    """The required arguments of each script, all valid."""
    model, data = str(world["model"]), str(world["data"])
    return {
        "pretrain.py": ["--dataset_name", data, "--output_dir", str(out)],
        "linear_probe.py": ["--model_name_or_path", model, "--dataset_name", data, "--output_dir", str(out)],
        "snapshot_curve.py": [
            "--model_name_or_path",
            model,
            "--dataset_name",
            data,
            "--output_dir",
            str(out),
        ],
        "finetune.py": ["--model_name_or_path", model, "--dataset_name", data, "--output_dir", str(out)],
        "distill.py": ["--teacher", model, "--dataset_name", data, "--output_dir", str(out)],
        "semi_supervised_table.py": ["--probe_run", model, "--output_dir", str(out)],
        "export_timm.py": ["--model_dir", model],
        "render_cards.py": ["--results_dir", str(world["results"]), "--cards_dir", str(out)],
        "push_to_hub.py": ["--model_dir", model, "--repo_id", "org/name"],
        "run_experiments.py": [str(world["grid"]), "--results_dir", str(out)],
        "benchmark.py": ["--mode", "data", "--output_json", str(out / "report.json")],
    }[command.name]


def base_type(annotation: typing.Any) -> typing.Any:
    """`int` for `int | None`, `list[int]` stays `list[int]`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return kinds[0] if len(kinds) == 1 else annotation
    return annotation


def invalid_values(field: dataclasses.Field, hints: dict, world: dict[str, Path]) -> list[str]:
    """Values of the kinds the field's type admits: wrong type, out of range, bad paths."""
    kind = base_type(hints[field.name])
    if typing.get_origin(kind) is list:
        kind = typing.get_args(kind)[0]
    if kind is bool:
        return []
    if kind in NUMBERS:
        return NUMBERS[kind]
    file = world["file"]
    return ["/nonexistent/place", str(file), str(file / "below"), "not-a-choice"]


def cases() -> list[tuple[Command, type, str]]:
    found = []
    for command in COMMANDS:
        for arguments in command.arguments:
            if any(base.__module__.startswith("transformers") for base in arguments.__mro__):
                continue  # TrainingArguments (fine-tuning titles it in a subclass): transformers checks its own
            found += [
                (command, arguments, field.name) for field in dataclasses.fields(arguments) if field.init
            ]
    return found


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


@pytest.mark.parametrize(
    "command, arguments, name",
    cases(),
    ids=lambda value: getattr(value, "name", getattr(value, "__name__", value)),
)
def test_every_argument_refuses_invalid_values_with_its_flag_and_writes_nothing(
    command, arguments, name, world, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    field = next(f for f in dataclasses.fields(arguments) if f.name == name)
    hints = typing.get_type_hints(arguments)
    refused = []
    for value in invalid_values(field, hints, world):
        before = files_under(world["root"]) | files_under(tmp_path)
        argv = valid_argv(command, world, tmp_path / "out") + [f"--{name}", value]
        try:
            command.parse(argv)
        except SystemExit as exit:
            error = capsys.readouterr().err
            assert exit.code == 2 and f"--{name}" in error and "Traceback" not in error, (value, error)
            refused.append(value)
        else:
            capsys.readouterr()
        assert files_under(world["root"]) | files_under(tmp_path) == before, f"--{name} {value} wrote files"
    if name not in FREE_TEXT and base_type(hints[name]) is not bool:
        assert refused, (
            f"{command.name}: no invalid value of --{name} is refused; check it, or declare it FREE_TEXT"
        )


def test_valid_arguments_parse(world, tmp_path):
    for command in COMMANDS:
        command.parse(valid_argv(command, world, tmp_path / "out"))


def test_training_arguments_of_finetune_refuse_wrong_types(world, tmp_path, capsys):
    from transformers import TrainingArguments

    hints = typing.get_type_hints(TrainingArguments)
    checked = 0
    for field in dataclasses.fields(TrainingArguments):
        kind = base_type(hints.get(field.name, str)) if field.init else None
        if kind not in (int, float, bool) or field.name.startswith("_"):
            continue
        with pytest.raises(SystemExit) as exit:
            FINETUNE.parse(valid_argv(FINETUNE, world, tmp_path / "out") + [f"--{field.name}", "x"])
        assert exit.value.code == 2 and f"--{field.name}" in capsys.readouterr().err
        checked += 1
    assert checked > 30


# ----------------------------------------------------------------------------------------------
# The examples the issue names, end to end: exit code 2, the running script's own flag, no traceback
# ----------------------------------------------------------------------------------------------


def run_script(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.slow  # a script or Python run in a subprocess
def test_a_train_only_dataset_with_the_default_monitor_names_pretrains_flags_before_decoding(world, tmp_path):
    import datasets

    train_only = tmp_path / "train-only"
    datasets.load_from_disk(str(world["data"]))["train"].save_to_disk(str(train_only))  # one split: "train"
    cache = tmp_path / "decoded"
    result = run_script(
        str(REPO_ROOT / "scripts" / "pretrain.py"),
        "--dataset_name",
        str(train_only),
        "--output_dir",
        str(tmp_path / "out"),
        "--decoded_cache_dir",
        str(cache),
        "--image_size",
        "16",
        "--report_to",
        "none",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--eval_split test:" in result.stderr and "--knn_every_epochs 0" in result.stderr
    assert "--split " not in result.stderr and "Traceback" not in result.stderr
    assert not cache.exists()  # refused before the training split was decoded


@pytest.mark.slow  # a script or Python run in a subprocess
def test_finetune_label_fraction_zero_is_a_usage_error(world, tmp_path):
    result = run_script(
        str(REPO_ROOT / "scripts" / "finetune.py"),
        "--model_name_or_path",
        str(world["model"]),
        "--dataset_name",
        str(world["data"]),
        "--output_dir",
        str(tmp_path / "out"),
        "--label_fraction",
        "0",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "--label_fraction 0.0 must be in (0, 1]" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------
# Paths and inputs checked before the work; library errors named with the path and the fix
# ----------------------------------------------------------------------------------------------


def tiny_pretraining(output_dir: Path, cifar10_path: Path, **overrides):
    from hf_simclr.pretraining.arguments import PretrainingArguments
    from hf_simclr.pretraining.data_arguments import DataArguments
    from hf_simclr.pretraining.loop import pretrain
    from hf_simclr.pretraining.model_arguments import ModelArguments

    data = DataArguments(
        dataset_name=str(cifar10_path),
        max_train_samples=16,
        image_size=16,
        decoded_cache_dir=str(output_dir.parent / "decoded"),
    )
    model = ModelArguments(**overrides.pop("model", {}))
    args = dict(
        output_dir=str(output_dir),
        max_steps=1,
        per_device_train_batch_size=8,
        report_to="none",
        knn_every_epochs=0,
        warmup_epochs=0,
    )
    return pretrain(model, data, PretrainingArguments(**{**args, **overrides}))


@pytest.mark.parametrize(
    "resume, match",
    [
        ("model", "is not a checkpoint folder"),
        ("empty", "is not a checkpoint folder"),
        ("latest", "no checkpoint in .* start afresh: the same command without --resume_from_checkpoint"),
    ],
)
def test_a_resume_without_a_checkpoint_is_refused_before_the_data_is_read(
    world, cifar10_path, tmp_path, resume, match
):
    from hf_simclr.arguments import UsageError

    (tmp_path / "empty").mkdir()
    target = {"model": str(world["model"]), "empty": str(tmp_path / "empty"), "latest": "latest"}[resume]
    with pytest.raises(UsageError, match=match):
        tiny_pretraining(tmp_path / "run", cifar10_path, resume_from_checkpoint=target)
    assert not (tmp_path / "decoded").exists()


def test_an_unwritable_checkpoint_folder_and_a_model_that_does_not_take_the_views_stop_before_training(
    cifar10_path, tmp_path
):
    from hf_simclr.arguments import UsageError

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").write_text("a file where the checkpoints go")
    with pytest.raises(UsageError, match=r"--output_dir .*checkpoints is a file, not a folder"):
        tiny_pretraining(run_dir, cifar10_path)
    with pytest.raises(
        UsageError, match=r"--backbone vit_tiny_patch16_224 does not take 16px views .* --image_size"
    ):
        tiny_pretraining(
            tmp_path / "vit", cifar10_path, model={"backbone": "vit_tiny_patch16_224", "cifar_stem": False}
        )
    assert not (tmp_path / "decoded").exists() and not (tmp_path / "vit" / "log_history.jsonl").exists()


def test_weights_and_datasets_that_cannot_be_read_are_named_with_the_fix(world, tmp_path):
    import shutil

    from hf_simclr.arguments import UsageError
    from hf_simclr.data import load_image_dataset
    from hf_simclr.model_folder import load_encoder

    broken = Path(shutil.copytree(world["model"], tmp_path / "broken"))
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated, as by a full disk
    with pytest.raises(UsageError, match=r"--model_name_or_path .*broken: cannot read the model's weights"):
        load_encoder(broken)
    from hf_simclr.finetuning.arguments import FinetuneArguments
    from hf_simclr.finetuning.run import build_classifier

    with pytest.raises(UsageError, match=r"--model_name_or_path .*broken: cannot read the model's weights"):
        build_classifier(FinetuneArguments(str(broken), dataset_name=str(world["data"])), ["a", "b"], seed=0)
    (tmp_path / "parquet").mkdir()
    (tmp_path / "parquet" / "train.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(UsageError, match=r"--dataset_name .*parquet: cannot read the dataset"):
        load_image_dataset(str(tmp_path / "parquet"))


def test_a_push_without_network_names_the_repository_and_what_to_do(world, monkeypatch, online_hub):
    import huggingface_hub

    from hf_simclr.arguments import UsageError
    from hf_simclr.hub import push_model_folder

    def unreachable(self, *args, **kwargs):
        raise ConnectionError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", unreachable)
    with pytest.raises(UsageError, match="cannot reach the Hub to push to org/name .* check the network"):
        push_model_folder(world["model"], "org/name", require_results=False)


# ----------------------------------------------------------------------------------------------
# A user's file is never replaced; a recipe's null means the default
# ----------------------------------------------------------------------------------------------


def test_a_hand_written_readme_is_kept_by_the_probe_and_refused_by_the_push(
    world, tmp_path, monkeypatch, capsys
):
    import shutil

    from hf_simclr.arguments import UsageError
    from hf_simclr.evaluation.arguments import LinearProbeArguments
    from hf_simclr.evaluation.probe import run_linear_probe
    from hf_simclr.hub import PushArguments, push_to_hub

    model = Path(shutil.copytree(world["model"], tmp_path / "model"))
    (model / "README.md").write_text("# My notes on this model\n")
    run_linear_probe(
        LinearProbeArguments(
            str(model),
            dataset_name=str(world["data"]),
            knn_k=[3],
            label_fractions=[],
            skip_baseline=True,
            max_iter=5,
            device="cpu",
        )
    )
    assert (model / "README.md").read_text() == "# My notes on this model\n" and (
        model / "results.json"
    ).is_file()
    assert "was not written by hf_simclr, so it is kept" in capsys.readouterr().out
    with pytest.raises(UsageError, match="README.md was not written by hf_simclr .* --write_card false"):
        push_to_hub(PushArguments(model_dir=str(model), repo_id="org/name"))
    assert (model / "README.md").read_text() == "# My notes on this model\n"


def test_generated_tables_never_replace_a_users_file(tmp_path):
    from hf_simclr.arguments import UsageError
    from hf_simclr.model_folder import GENERATED_MARK, write_generated_text

    mine = tmp_path / "table.md"
    mine.write_text("my own table")
    with pytest.raises(UsageError, match="table.md was not written by hf_simclr"):
        write_generated_text(mine, f"{GENERATED_MARK} test -->\n| a |", "pick another --table")
    assert mine.read_text() == "my own table"
    ours = tmp_path / "ours.md"
    write_generated_text(ours, f"{GENERATED_MARK} test -->\nfirst", "unused")
    write_generated_text(ours, f"{GENERATED_MARK} test -->\nsecond", "unused")  # its own file: replaced
    assert ours.read_text().endswith("second")


def test_null_in_a_recipe_means_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("max_train_samples: null\ndecoded_cache_dir: null\nknn_k: 5\noptimizer: sgd\n")
    model_args, data_args, args = PRETRAIN.parse([str(recipe), "--output_dir", str(tmp_path / "out")])
    assert data_args.max_train_samples is None and data_args.decoded_cache_dir is None and args.knn_k == 5
    assert not (tmp_path / "None").exists()


@pytest.mark.slow  # a script or Python run in a subprocess
@pytest.mark.parametrize(
    "network",
    [
        {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},  # offline mode
        {"HF_ENDPOINT": "http://127.0.0.1:9"},  # no network, and no word of it: the first refusal says it
    ],
    ids=["offline_mode", "unreachable_hub"],
)
def test_the_bare_command_runs_the_main_job_and_offline_says_which_dataset_to_pass(tmp_path, network):
    from hf_simclr.pretraining.arguments import default_output_dir

    model_args, data_args, args = PRETRAIN.parse([])
    assert (
        data_args.dataset_name == "uoft-cs/cifar10"
        and data_args.preset == "cifar10"
        and args.output_dir is None
    )
    assert default_output_dir(model_args, data_args) == "runs/simclr-cifar10-resnet18"
    environment = {**__import__("os").environ, **network}
    for variable in {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"} - set(network):
        environment.pop(variable, None)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "pretrain.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=environment,
    )
    seconds = time.perf_counter() - started
    errors = [line for line in result.stderr.splitlines() if line.startswith("pretrain.py: error:")]
    assert "Retry" not in result.stderr and seconds < 20, (
        seconds,
        result.stderr[-2000:],
    )  # 29 s of retries before
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert (
        "--dataset_name uoft-cs/cifar10: cannot load it from the Hub" in errors[0]
        and "--dataset_name <folder>" in errors[0]
    )
    assert "runs/simclr-cifar10-resnet18" in result.stdout and not list(
        tmp_path.iterdir()
    )  # named, nothing written


@pytest.mark.slow  # a script or Python run in a subprocess
def test_under_accelerate_launch_the_mistake_is_the_only_output(world, tmp_path):
    # accelerate's launcher turns any non-zero exit of its child into its own traceback unless -q (then it
    # exits with 1): the README says to use -q; the script's own output is the usage line and the message.
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "-q",
        "--cpu",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    result = subprocess.run(
        [
            *launcher,
            str(REPO_ROOT / "scripts" / "linear_probe.py"),
            "--model_name_or_path",
            str(world["model"]),
            "--dataset_name",
            str(world["data"]),
            "--output_dir",
            str(world["file"]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"linear_probe.py: error: --output_dir {world['file']} is a file, not a folder" in result.stderr
