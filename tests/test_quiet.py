"""The package is quiet unless it has something to say: fast `--help`, progress on long phases, no noise."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO_ROOT / "scripts").glob("*.py"))


@pytest.mark.slow  # a script or Python run in a subprocess
def test_help_imports_no_torch() -> None:
    # Before: --help took 16 s on an idle 2-core machine, 9 s of it importing torch, transformers and timm.
    # One process runs every script's --help in turn: torch must still be unimported after each. finetune.py
    # and distill.py come last: they take transformers' TrainingArguments, whose module imports torch.
    trainer_scripts = ("distill.py", "finetune.py")
    scripts = sorted(SCRIPTS, key=lambda path: path.name in trainer_scripts)
    code = "import runpy, sys\n"
    for script in scripts:
        code += (
            f"sys.argv = [{str(script)!r}, '--help']\n"
            "try:\n"
            f"    runpy.run_path({str(script)!r}, run_name='__main__')\n"
            "except SystemExit as exit:\n"
            "    assert exit.code == 0\n"
            f"print('TORCH', {script.name!r}, 'torch' in sys.modules)\n"
        )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("TORCH")]
    assert lines == [f"TORCH {script.name} {script.name in trainer_scripts}" for script in scripts]
    assert result.stdout.count("usage:") == len(scripts)


def test_the_linear_probe_fits_show_progress(capsys) -> None:
    from hf_simclr.evaluation.linear import fit_linear_probe

    generator = torch.Generator().manual_seed(0)
    h, y = torch.randn(60, 8, generator=generator), torch.arange(60) % 3
    fit_linear_probe(h, y, 3, weight_decays=[1e-4, 1e-2], max_iter=5, progress="linear probe on h")
    assert "linear probe on h" in capsys.readouterr().err  # 2 held-out fits and the final one, on a bar


def test_saving_a_model_folder_prints_no_shard_bar(tmp_path, capsys) -> None:
    from hf_simclr import SimCLRConfig, SimCLRForPreTraining
    from hf_simclr.augmentation import augmentation_preset
    from hf_simclr.model_folder import save_model_folder

    model = SimCLRForPreTraining(SimCLRConfig(image_size=32, cifar_stem=True))
    save_model_folder(model, tmp_path / "model", augmentation_preset("cifar10"))
    assert "Writing model shards" not in capsys.readouterr().err


def test_a_short_run_says_warmup_covers_it_and_does_not_compile_on_cpu(
    cifar10_path, tmp_path, capsys
) -> None:
    from hf_simclr.pretraining.arguments import PretrainingArguments
    from hf_simclr.pretraining.data_arguments import DataArguments
    from hf_simclr.pretraining.loop import pretrain
    from hf_simclr.pretraining.model_arguments import ModelArguments

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # none of our calls uses a deprecated API
        pretrain(
            ModelArguments(),
            DataArguments(dataset_name=str(cifar10_path), max_train_samples=16, image_size=16),
            PretrainingArguments(
                output_dir=str(tmp_path / "run"),
                num_train_epochs=2,
                per_device_train_batch_size=8,
                report_to="none",
                knn_every_epochs=0,
            ),
        )
    printed = capsys.readouterr().out
    assert "SimCLR pretraining: 1 process(es)" in printed.splitlines()[0]
    assert "--warmup_epochs 10 makes 4 of the 4 steps warmup" in printed
    import json

    record = json.loads((tmp_path / "run" / "training_args.json").read_text())
    assert record["torch_compile"] is None and record["torch_compile_applied"] is False  # default: CUDA only
