"""A saved folder loads three ways: with hf_simclr, with trust_remote_code only, and by repo id offline."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoImageProcessor, AutoModel, AutoModelForPreTraining, pipeline

from hf_simclr import SimCLRConfig, SimCLRForPreTraining, SimCLRModel
from hf_simclr.augmentation import augmentation_preset
from hf_simclr.model_folder import save_model_folder

REPO_ID = "org/simclr-resnet18-stl10"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    model = SimCLRForPreTraining(SimCLRConfig(backbone="resnet18", cifar_stem=True, image_size=32))
    model.train()(torch.randn(8, 2, 3, 32, 32))  # non-trivial BN statistics
    save_model_folder(model.eval(), folder, augmentation_preset("cifar10"), {"seed": 0})
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        h = model.simclr(pixels).pooler_output
    torch.save({"pixels": pixels, "h": h}, folder.parent / "reference.pt")
    return folder


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def test_folder_holds_weights_code_processor_and_args(model_folder: Path) -> None:
    names = {p.name for p in model_folder.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "training_args.json"} <= names
    assert {"modeling_simclr.py", "configuration_simclr.py", "loss.py"} <= names
    assert not any(name.startswith(".tmp") for name in names)
    auto_map = json.loads((model_folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_simclr.SimCLRModel"


def test_auto_model_with_package_installed(model_folder: Path) -> None:
    model = AutoModel.from_pretrained(model_folder).eval()
    assert isinstance(model, SimCLRModel)
    reference = torch.load(model_folder.parent / "reference.pt")
    with torch.no_grad():
        h = model(reference["pixels"]).pooler_output
    assert (h - reference["h"]).abs().max().item() < 1e-6


@pytest.fixture
def transformers_log() -> Iterator[list[logging.LogRecord]]:
    """Every record transformers logs (its loggers do not propagate to pytest's caplog)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    library_logger = logging.getLogger("transformers")
    library_logger.addHandler(handler)
    yield records
    library_logger.removeHandler(handler)


def test_encoder_loads_from_a_pretraining_folder_without_a_load_report(
    model_folder: Path, transformers_log: list[logging.LogRecord]
) -> None:
    # Before: every AutoModel.from_pretrained of a pretraining folder logged transformers' LOAD REPORT
    # with the projection head's weights as UNEXPECTED (the model card's usage line included).
    AutoModel.from_pretrained(model_folder)
    AutoModel.from_pretrained(model_folder, trust_remote_code=True)  # the folder's own code file
    full = AutoModelForPreTraining.from_pretrained(model_folder)
    assert not [record.getMessage() for record in transformers_log if "LOAD REPORT" in record.getMessage()]
    saved = load_file(model_folder / "model.safetensors")
    head = full.projection_head.state_dict()
    assert head and all(torch.equal(value, saved[f"projection_head.{name}"]) for name, value in head.items())


@pytest.mark.slow  # a script or Python run in a subprocess
def test_trust_remote_code_without_hf_simclr(model_folder: Path) -> None:
    result = run_python(
        f"""
        import sys
        sys.modules["hf_simclr"] = None  # hf_simclr is not importable in this process
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(model_folder)!r}, trust_remote_code=True).eval()
        assert "hf_simclr" not in type(model).__module__, type(model).__module__
        reference = torch.load({str(model_folder.parent / "reference.pt")!r})
        with torch.no_grad():
            h = model(reference["pixels"]).pooler_output
        print("MAXDIFF", (h - reference["h"]).abs().max().item())
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    max_diff = float(result.stdout.split("MAXDIFF")[1].split()[0])
    assert max_diff < 1e-6


@pytest.mark.slow  # a script or Python run in a subprocess
def test_repo_id_from_offline_hub_cache(model_folder: Path, tmp_path: Path) -> None:
    revision = "0" * 40
    repo_dir = tmp_path / "hub" / ("models--" + REPO_ID.replace("/", "--"))
    shutil.copytree(model_folder, repo_dir / "snapshots" / revision)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)
    result = run_python(
        f"""
        import torch
        import hf_simclr
        from transformers import AutoImageProcessor, AutoModel
        model = AutoModel.from_pretrained({REPO_ID!r}).eval()
        processor = AutoImageProcessor.from_pretrained({REPO_ID!r})
        reference = torch.load({str(model_folder.parent / "reference.pt")!r})
        with torch.no_grad():
            h = model(reference["pixels"]).pooler_output
        print("MAXDIFF", (h - reference["h"]).abs().max().item(), processor.size)
        """,
        env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.split("MAXDIFF")[1].split()[0]) < 1e-6


def test_image_processor_and_feature_extraction_pipeline(model_folder: Path) -> None:
    processor = AutoImageProcessor.from_pretrained(model_folder)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 32, 32)

    extractor = pipeline("image-feature-extraction", model=str(model_folder), trust_remote_code=True)
    features = extractor(image, pool=True, return_tensors=True)
    model = AutoModel.from_pretrained(model_folder).eval()
    with torch.no_grad():
        expected = model(pixels).pooler_output
    torch.testing.assert_close(features.reshape(expected.shape), expected, atol=1e-5, rtol=1e-5)


# Every mode the training path accepts (tests/test_transforms.py), at shapes that are not square.
PIL_MODES = ["RGB", "L", "LA", "RGBA", "CMYK", "P", "1", "I;16", "I", "F"]


def image_in_mode(mode: str, height: int = 40, width: int = 64) -> Image.Image:
    rng = np.random.default_rng(len(mode))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (height, width), dtype=np.uint16))
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32))
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


def test_saved_processor_is_the_evaluation_view_for_every_mode_and_shape(model_folder: Path) -> None:
    import datasets

    from hf_simclr.data import decode_images
    from hf_simclr.image_view import to_model_input

    processor = AutoImageProcessor.from_pretrained(model_folder)
    assert type(processor).__name__ == "SimCLRImageProcessor" and processor.image_size == 32
    images = [image_in_mode(mode, *shape) for mode in PIL_MODES for shape in ((40, 64), (64, 40), (33, 33))]
    assert {image.mode for image in images} == set(PIL_MODES)
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    # The probe's path: the split decoded to uint8 (as pretraining and the kNN monitor decode it), normalised.
    features = datasets.Features({"image": datasets.Image()})
    rows = datasets.Dataset.from_dict({"image": images}, features=features)
    probe_pixels = to_model_input(decode_images(rows, 32), processor.image_mean, processor.image_std)
    assert pixels.shape == probe_pixels.shape == (len(images), 3, 32, 32)
    assert (pixels - probe_pixels).abs().max().item() < 1e-5


@pytest.mark.parametrize("mode", PIL_MODES)
def test_readme_usage_works_on_every_image_mode(model_folder: Path, mode: str) -> None:
    processor = AutoImageProcessor.from_pretrained(model_folder)
    model = AutoModel.from_pretrained(model_folder).eval()
    inputs = processor(images=[image_in_mode(mode)], return_tensors="pt")
    with torch.no_grad():
        h = model(**inputs).pooler_output
    assert h.shape == (1, 512) and torch.isfinite(h).all()


@pytest.mark.slow  # a script or Python run in a subprocess
def test_processor_loads_with_trust_remote_code_only(model_folder: Path) -> None:
    result = run_python(
        f"""
        import sys
        sys.modules["hf_simclr"] = None  # hf_simclr is not importable in this process
        import numpy as np
        from PIL import Image
        from transformers import AutoImageProcessor
        processor = AutoImageProcessor.from_pretrained({str(model_folder)!r}, trust_remote_code=True)
        assert "hf_simclr" not in type(processor).__module__, type(processor).__module__
        image = Image.fromarray(np.full((40, 64), 1000, dtype=np.uint16))  # 16-bit grayscale
        print("SHAPE", tuple(processor(images=image)["pixel_values"].shape))
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHAPE (1, 3, 32, 32)" in result.stdout


def test_processor_rejects_what_it_cannot_read(model_folder: Path) -> None:
    processor = AutoImageProcessor.from_pretrained(model_folder)
    with pytest.raises(TypeError, match="open files with PIL.Image.open"):
        processor(images="cat.png")
    with pytest.raises(TypeError, match="takes images and return_tensors only"):
        processor(images=image_in_mode("RGB"), size={"height": 64, "width": 64})


def test_readme_usage_runs_on_a_pretraining_folder(
    model_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the README's snippet used an undefined image, its pipeline form gave the (1, 512, 4, 4)
    # feature map rather than h, and a classifier from the folder had 2 labels.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    usage = readme.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", usage, flags=re.DOTALL)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(model_folder, tmp_path / "runs" / "simclr-cifar10-resnet18")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save("image.jpg")
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["h"].shape == (1, 512)
    torch.testing.assert_close(namespace["features"], namespace["h"], atol=1e-5, rtol=1e-5)
    classifier = namespace["classifier"]
    assert classifier.config.num_labels == 10 and classifier.config.id2label[9] == "truck"
    assert classifier.classifier.out_features == 10


def test_readme_usage_reads_the_folder_the_quick_start_writes() -> None:
    # Before: the usage code read runs/simclr-cifar10 while the bare command writes runs/simclr-cifar10-resnet18.
    from hf_simclr.pretraining.arguments import default_output_dir
    from hf_simclr.pretraining.data_arguments import DataArguments
    from hf_simclr.pretraining.model_arguments import ModelArguments

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    usage = readme.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0]
    model_dir = re.search(r'model_dir = "([^"]+)"', usage).group(1)
    written = default_output_dir(ModelArguments(), DataArguments())
    assert model_dir == written and f"`{written}`" in readme.split("\n## Usage\n", 1)[0]
