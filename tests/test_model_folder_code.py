"""A saved model folder carries only the code that loading it needs, and that code is self-contained."""

from __future__ import annotations

import ast
from pathlib import Path

from hf_simclr import SimCLRConfig, SimCLRForPreTraining
from hf_simclr.augmentation import augmentation_preset
from hf_simclr.model_folder import CODE_FILES, save_model_folder


def relative_imports(source: str) -> set[str]:
    """The modules a file imports relative to its own folder (`from .x import ...`)."""
    return {
        node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom) and node.level
    }


def test_the_folder_holds_the_model_files_and_the_evaluation_view_but_not_the_augmentation(tmp_path: Path):
    model = SimCLRForPreTraining(SimCLRConfig(backbone="resnet18", cifar_stem=True, image_size=16))
    folder = save_model_folder(model, tmp_path / "model", augmentation_preset("cifar10", image_size=16))
    code = sorted(path.name for path in folder.glob("*.py"))
    assert code == sorted(CODE_FILES)
    assert "image_view.py" in code and "transforms.py" not in code and "gpu_transforms.py" not in code
    shipped = {Path(name).stem for name in code}
    for path in folder.glob("*.py"):  # each file imports only files of the folder (the copy on the Hub)
        assert relative_imports(path.read_text()) <= shipped, path.name
