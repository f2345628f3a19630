"""What a reader of a shared folder runs, in a process that cannot import hf_simclr (the Hub's readers): every
Python block of the model card and of the README's usage, on a probed folder that was also exported to timm,
so that AutoModel, AutoImageProcessor, pipeline and timm all load it."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from builders import REMOTE_CODE_PROMPT, pretraining_folder, run_in_a_terminal, save_tiny_dataset
from PIL import Image

from hf_simclr.evaluation.arguments import LinearProbeArguments
from hf_simclr.evaluation.probe import run_linear_probe
from hf_simclr.timm_export import export_timm

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # every test runs Python in a subprocess

WITHOUT_HF_SIMCLR = (
    'import sys\nsys.modules["hf_simclr"] = None  # not importable here, as for the Hub\'s readers\n'
)


@pytest.fixture(scope="module")
def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stock-architecture folder (32px, no CIFAR stem), exported to timm, then probed (card written)."""
    root = tmp_path_factory.mktemp("card-usage")
    folder = pretraining_folder(root / "model", cifar_stem=False)
    export_timm(folder)
    data = save_tiny_dataset(root / "data", per_class=(4, 2))
    run_linear_probe(
        LinearProbeArguments(
            str(folder),
            dataset_name=str(data),
            knn_k=[3],
            label_fractions=[],
            skip_baseline=True,
            max_iter=5,
            device="cpu",
        )
    )
    return folder


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def loading(code: str, folder: Path) -> str:
    """A card's code, loading `folder`: a card without a Hub id names its model `path/to/<folder name>`."""
    return code.replace(f"path/to/{folder.name}", str(folder))


def words(markdown: str) -> str:
    return " ".join(markdown.split())


def run_without_hf_simclr(code: str, cwd: Path) -> subprocess.CompletedProcess:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
        cwd / "image.jpg"
    )
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_HF_SIMCLR + code], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_every_code_block_of_the_card_runs_without_hf_simclr(shared_folder: Path, tmp_path: Path) -> None:
    card = (shared_folder / "README.md").read_text()
    blocks = python_blocks(card)
    assert len(blocks) == 2 and "timm.create_model" in blocks[1]  # the usage, and timm's (a current export)
    checks = textwrap.dedent("""
        import torch
        assert "hf_simclr" not in type(model).__module__ and h.shape == (1, 512)
        torch.testing.assert_close(torch.tensor(features).reshape(1, -1), h.detach(), atol=1e-4, rtol=1e-4)
        pixels = processor(images=Image.open("image.jpg"), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            assert (model(pixels) - h.detach()).abs().max() < 1e-4  # timm's copy gives the same h
    """)
    result = run_without_hf_simclr(loading("\n".join(blocks), shared_folder) + checks, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_readme_usage_runs_on_an_exported_folder_without_hf_simclr(
    shared_folder: Path, tmp_path: Path
) -> None:
    # Before: the export's timm keys in config.json made transformers read the image processor from there.
    readme = (REPO_ROOT / "README.md").read_text()
    usage = readme.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0]
    code = "\n".join(python_blocks(usage)).replace('"runs/simclr-cifar10-resnet18"', repr(str(shared_folder)))
    checks = "\nassert h.shape == (1, 512) and classifier.config.num_labels == 10\n"
    result = run_without_hf_simclr(code + checks, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_cards_word_on_trust_remote_code_holds_where_hf_simclr_is_installed(
    shared_folder: Path, tmp_path: Path
) -> None:
    # Before: the card said that with hf_simclr installed trust_remote_code is not needed, while pipeline
    # (the README says so) still asks to run the custom code without it.
    card = (shared_folder / "README.md").read_text()
    said = words(card.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0])
    readme = words((REPO_ROOT / "README.md").read_text().split("\n## Usage\n", 1)[1].split("\n## ", 1)[0])
    assert "`AutoModel` and `AutoImageProcessor` need no `trust_remote_code`" in said
    assert "`pipeline` still needs `trust_remote_code=True`" in said
    assert "`pipeline` still needs `trust_remote_code=True`" in readme  # the two say the same
    # The card's usage as it says: the loaders without the flag, pipeline with it, in a terminal.
    usage = python_blocks(card)[0].splitlines()
    usage = [line if "pipeline(" in line else line.replace(", trust_remote_code=True", "") for line in usage]
    assert sum("trust_remote_code=True" in line for line in usage) == 1
    Image.fromarray(np.zeros((40, 48, 3), dtype=np.uint8)).save(tmp_path / "image.jpg")
    output, seconds = run_in_a_terminal(
        "import hf_simclr\n" + loading("\n".join(usage), shared_folder), tmp_path
    )
    assert REMOTE_CODE_PROMPT not in output and seconds < 60
