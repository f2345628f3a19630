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
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import PreTrainedModel
from transformers.utils import logging as transformers_logging

from .configuration_simclr import SimCLRConfig
from .image_processing_simclr import SimCLRImageProcessor
from .modeling_simclr import SimCLRModel
from .transforms import IMAGENET_MEAN, IMAGENET_STD, AugmentationConfig

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

TRAINING_ARGS_FILE = "training_args.json"


def image_processor_for(augmentation: AugmentationConfig) -> SimCLRImageProcessor:
    """The image processor of a model trained with `augmentation`: its evaluation view (size, statistics)."""
    return SimCLRImageProcessor(
        image_size=augmentation.image_size, image_mean=augmentation.mean, image_std=augmentation.std
    )


def device_description(num_processes: int = 1, device: torch.device | str | None = None) -> str:
    """The hardware of a run, for its records and the model card: the GPU's name (`"2 x NVIDIA H100 80GB
    HBM3"` for two processes) or `"CPU"` (also when `device` is the CPU on a machine with a GPU)."""
    if not torch.cuda.is_available() or (device is not None and torch.device(device).type != "cuda"):
        return "CPU"
    name = torch.cuda.get_device_name(device)
    return name if num_processes == 1 else f"{num_processes} x {name}"


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file beside it, renamed into place: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def write_json_atomically(path: str | Path, content: Any) -> Path:
    """[`write_text_atomically`] of `content` as indented JSON (non-JSON values written as strings)."""
    return write_text_atomically(path, json.dumps(content, indent=2, default=str) + "\n")


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


# ----------------------------------------------------------------------------------------------
# Reading a model folder (local or on the Hub) back: config, encoder, evaluation view.
# ----------------------------------------------------------------------------------------------

CONFIG_FILE = "config.json"
IMAGE_PROCESSOR_FILE = "preprocessor_config.json"
RESULTS_FILE = "results.json"
MODEL_CARD_FILE = "README.md"
LOG_HISTORY_FILE = "log_history.jsonl"
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")  # one file, or sharded
CODE_FILES = (
    "configuration_simclr.py",
    "modeling_simclr.py",
    "loss.py",
    "image_processing_simclr.py",
    "transforms.py",
)
# Everything a shared folder must hold besides the weights (plots are optional).
REQUIRED_FILES = (
    CONFIG_FILE,
    *CODE_FILES,
    IMAGE_PROCESSOR_FILE,
    MODEL_CARD_FILE,
    RESULTS_FILE,
    TRAINING_ARGS_FILE,
)
# Never uploaded: the probe's feature cache, pretraining's resumable checkpoints (optimizer state), its
# encoder snapshots (`--snapshot_epochs`: a model each, for studying training, not the published model),
# and half-written temporary files (fnmatch patterns: `*` also matches `/`).
UPLOAD_IGNORE_PATTERNS = [
    "feature_cache/*",
    "checkpoints/*",
    "snapshots/*",
    ".tmp-*",
    ".*.tmp",
    "*__pycache__*",
]
# Package data (pyproject.toml), so that every install, editable or not, can write model cards.
MODEL_CARD_TEMPLATE = Path(__file__).resolve().with_name("model_card_template.md")


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
    local = Path(model_name_or_path).expanduser()
    if local.is_dir():
        path = local / filename
        return path if path.is_file() else None
    if local.is_absolute() or str(model_name_or_path).startswith((".", "~")) or local.exists():
        return None  # a local path that is not a folder: never a Hub id
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(str(model_name_or_path), filename, revision=revision))
    except (EntryNotFoundError, LocalEntryNotFoundError, HFValidationError):
        return None


def load_simclr_config(model_name_or_path: str | Path, revision: str | None = None) -> SimCLRConfig:
    """Read the `SimCLRConfig` of a model folder, refusing anything that is not a SimCLR model.

    Raises:
        ValueError: if there is no `config.json` (not a model folder, a wrong path, or a Hub id that
            is neither cached nor reachable), or its `model_type` is not `"simclr"`.
    """
    path = resolve_model_file(model_name_or_path, CONFIG_FILE, revision)
    if path is None:
        raise ValueError(
            f"{model_name_or_path}: no {CONFIG_FILE} found, so it is not a model folder. Pass the folder "
            f"written by pretraining (config.json, model.safetensors, ...) or a Hub id of a SimCLR model "
            f"(offline, the repository must already be in the Hugging Face cache)."
        )
    try:
        config_dict = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); re-save the model folder.") from error
    model_type = config_dict.get("model_type")
    if model_type != SimCLRConfig.model_type:
        raise ValueError(
            f"{model_name_or_path} holds a {model_type!r} model ({CONFIG_FILE} model_type), not a SimCLR "
            f"model ('simclr'). Pass a folder written by hf_simclr's pretraining."
        )
    return SimCLRConfig.from_dict(config_dict)


def load_encoder(model_name_or_path: str | Path, revision: str | None = None) -> SimCLRModel:
    """Load the encoder f(.) of a SimCLR model folder (a pretraining checkpoint or an encoder), in eval mode.

    Args:
        model_name_or_path (`str` or `Path`): a local folder or a Hub model id.
        revision (`str`, *optional*): Hub branch, tag or commit.

    Returns:
        [`SimCLRModel`] in eval mode; its forward gives h as `pooler_output` `(B, hidden_size)`.

    Raises:
        ValueError: if the folder is not a SimCLR model or its weights lack encoder tensors (which
            would otherwise be left randomly initialised).
    """
    load_simclr_config(model_name_or_path, revision)
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # a pretraining folder's head weights are expected extras
    try:
        encoder, info = SimCLRModel.from_pretrained(
            model_name_or_path, revision=revision, output_loading_info=True
        )
    except OSError as error:
        raise ValueError(
            f"{model_name_or_path}: cannot load the weights ({error}); the folder needs model.safetensors "
            f"as written by hf_simclr.hub.save_model_folder."
        ) from error
    finally:
        transformers_logging.set_verbosity(verbosity)
    missing = list(info["missing_keys"])
    if missing:
        raise ValueError(
            f"{model_name_or_path}: the weights lack {len(missing)} encoder tensors (e.g. {missing[:3]}), "
            f"which would stay random. Pass a folder saved from SimCLRModel or SimCLRForPreTraining."
        )
    return encoder.eval()


def eval_augmentation_for(
    model_name_or_path: str | Path, config: SimCLRConfig | None = None, revision: str | None = None
) -> AugmentationConfig:
    """The image size and normalisation the model was trained with, for `EvalTransform`.

    Read from the folder's `preprocessor_config.json`; without one, from the config's `image_size`
    with ImageNet statistics (a warning says so).

    Returns:
        `AugmentationConfig` whose `image_size`, `mean` and `std` are the model's (other fields default).
    """
    path = resolve_model_file(model_name_or_path, IMAGE_PROCESSOR_FILE, revision)
    if path is not None:
        processor = json.loads(path.read_text())
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


# ----------------------------------------------------------------------------------------------
# Model card
# ----------------------------------------------------------------------------------------------

# The license a card and a timm export record unless told otherwise: the project's (pyproject.toml), as a
# Hub license id.
DEFAULT_LICENSE = "apache-2.0"

PLOT_TITLES = {
    "training_curves": "Pretraining curves",
    "tsne": "t-SNE of the evaluation images' representations",
    "nearest_neighbors": "Nearest training images (cosine on h)",
    "confusion_matrix": "Linear probe confusion matrix",
}


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _percent(value: float | None) -> str:
    """An accuracy stored as a fraction, shown in percent: exactly 100x the 4-digit value of results.json."""
    return "-" if value is None else f"{100 * value:.2f}"


def _table_cell(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def describe_dataset(dataset_name: str | None, dataset_root: str | Path | None = None) -> dict[str, Any]:
    """How a dataset (Hub id or local folder) is named in a model card.

    Args:
        dataset_name (`str`, *optional*): as recorded by the run (`--dataset_name`).
        dataset_root (`str` or `Path`, *optional*): where to look for a recorded local folder that does not
            exist here (a run made on another machine): `<dataset_root>/<folder name>`.

    Returns:
        `dict` with `id` (Hub id, or the local folder's name, for `model-index`), `name` (for prose),
        `hub` (whether `id` is a Hub dataset) and `notes` (limitations, e.g. a JPEG-recompressed copy,
        read from the local folder's dataset card).
    """
    if not dataset_name:
        return {"id": "unknown", "name": "an unrecorded dataset", "hub": False, "notes": []}
    local = Path(dataset_name).expanduser()
    looks_local = local.is_absolute() or dataset_name.startswith((".", "~"))  # never a Hub id
    if not local.is_dir() and looks_local and dataset_root is not None:
        local = Path(dataset_root) / local.name
    if not local.is_dir():
        if looks_local:
            return {"id": local.name, "name": f"`{local.name}`", "hub": False, "notes": []}
        return {"id": dataset_name, "name": f"`{dataset_name}`", "hub": True, "notes": []}
    pretty, notes = local.name, []
    readme = local / "README.md"
    if readme.is_file():
        from huggingface_hub import DatasetCard

        dataset_card = DatasetCard.load(readme)
        pretty = dataset_card.data.to_dict().get("pretty_name") or local.name
        if "jpeg" in dataset_card.text.lower():
            notes.append(
                f"{pretty} is a local copy whose images were re-encoded as JPEG, not the original lossless "
                f"files: accuracies on it run below those published on the originals, so compare them only "
                f"with runs on the same copy."
            )
    name = pretty if pretty != local.name else f"`{local.name}`"
    return {"id": local.name, "name": name, "hub": False, "notes": notes}


def _projection_head_text(config: SimCLRConfig, hidden_size: int | None) -> str:
    if config.projection_layers == 0:
        return "none (z = h)"
    if config.projection_layers == 1:
        return f"one linear layer to {config.projection_dim} dimensions"
    hidden = config.projection_hidden_dim or hidden_size or "the width of h"
    norm = " + BatchNorm" if config.projection_batch_norm else ""
    return (
        f"MLP of {config.projection_layers} layers (hidden width {hidden}, Linear{norm} + ReLU), "
        f"output z of {config.projection_dim} dimensions"
    )


def _eval_results(
    results: dict[str, Any], dataset: dict[str, Any], semi_supervised: dict[str, Any] | None = None
) -> list[Any]:
    """`model-index` entries: every accuracy of the results table (fractions, as in results.json), and
    the top-1/top-3 of this model fine-tuned on label fractions (`semi_supervised.json`) when recorded."""
    from huggingface_hub import EvalResult

    split = results["dataset"]
    common = dict(
        task_type="image-classification",
        # One task for all: the Hub groups results by task type and dataset, not by name, so the metric
        # names say the protocol (linear probe and kNN on frozen features, fine-tuned).
        task_name="Image classification",
        dataset_type=dataset["id"],
        dataset_name=dataset["name"].replace("`", ""),
        dataset_config=split.get("config"),
        dataset_split=split.get("eval_split"),
        dataset_revision=split.get("revision"),
        metric_type="accuracy",
    )
    metrics = [("Linear probe top-1", results["linear_top1"]), ("Linear probe top-5", results["linear_top5"])]
    if results.get("linear_top3") is not None:
        metrics.insert(1, ("Linear probe top-3", results["linear_top3"]))
    metrics += [(f"kNN top-1 (k={k})", value) for k, value in results["knn_top1"].items()]
    metrics += [
        (f"Linear probe top-1 ({100 * float(fraction):g}% labels)", values["linear_top1"])
        for fraction, values in results.get("label_fraction", {}).items()
    ]
    entries = [EvalResult(metric_name=name, metric_value=value, **common) for name, value in metrics]
    finetuned = [e for e in (semi_supervised or {}).get("entries", []) if e["method"] == "finetune_simclr"]
    for entry in finetuned:
        for k in (1, 3):
            name = f"Fine-tuned top-{k} ({100 * entry['label_fraction']:g}% labels)"
            entries.append(EvalResult(metric_name=name, metric_value=entry[f"top{k}"], **common))
    return entries


def _results_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    baseline = results.get("random_init_baseline") or {}
    rows = [
        ("Linear probe top-1", _percent(results["linear_top1"]), _percent(baseline.get("linear_top1"))),
        ("Linear probe top-5", _percent(results["linear_top5"]), _percent(baseline.get("linear_top5"))),
    ]
    if results.get("linear_top3") is not None:
        top3 = ("Linear probe top-3", _percent(results["linear_top3"]), _percent(baseline.get("linear_top3")))
        rows.insert(1, top3)
    for k, value in results["knn_top1"].items():
        rows.append(
            (f"kNN top-1 (k={k})", _percent(value), _percent((baseline.get("knn_top1") or {}).get(k)))
        )
    for fraction, values in results.get("label_fraction", {}).items():
        name = f"Linear probe top-1, {100 * float(fraction):g}% of the labels ({values['num_train_samples']} images)"
        rows.append((name, _percent(values["linear_top1"]), "-"))
    z = results.get("z") or {}  # the projection head's output, probed beside h (paper, Section 4.2)
    if z:
        rows.append(
            ("Linear probe top-1 on z = g(h), the projection head's output", _percent(z["linear_top1"]), "-")
        )
        rows += [(f"kNN top-1 (k={k}) on z", _percent(value), "-") for k, value in z["knn_top1"].items()]
    return rows


WALL_TIMES_FILE = "wall_times.json"  # kept in results/ folders by hand: the commands' times and `gpu`


def _wall_time(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def _compute_rows(
    model_dir: Path,
    training_args: dict[str, Any],
    results: dict[str, Any],
    semi_supervised: dict[str, Any] | None,
) -> list[tuple[str, str, str]]:
    """(stage, hardware, wall time) of pretraining, evaluation and fine-tuning runs, as their records
    hold them (`device`, `wall_time_seconds`); a results/ folder's `wall_times.json` names the GPU of
    runs that did not record it."""
    fallback = (_read_json(model_dir / WALL_TIMES_FILE) or {}).get("gpu") or "not recorded"
    rows = []
    if training_args.get("wall_time_seconds") is not None:
        rows.append(("Pretraining", training_args.get("device") or fallback,
                     _wall_time(training_args["wall_time_seconds"])))  # fmt: skip
    if results.get("wall_time_seconds") is not None:
        rows.append(("Evaluation (probes, kNN, baseline, plots)", results.get("device") or fallback,
                     _wall_time(results["wall_time_seconds"])))  # fmt: skip
    for entry in (semi_supervised or {}).get("entries", []):
        if entry["method"] != "linear_probe" and entry.get("wall_time_seconds") is not None:
            init = "SimCLR" if entry["method"] == "finetune_simclr" else "random init"
            stage = f"Fine-tuning from {init}, {100 * entry['label_fraction']:g}% of the labels"
            hardware = entry.get("device") or "not recorded"
            rows.append((stage, hardware, _wall_time(entry["wall_time_seconds"])))
    return rows


def _timm_note(model_dir: Path, config: SimCLRConfig, repo_id: str | None) -> tuple[str | None, str | None]:
    """(a line on timm for the card, or None; a usage snippet, or None), and whether to tag `timm`: only
    a folder holding a current timm copy of its weights ([`hf_simclr.timm_export`]) is loadable by timm."""
    from .timm_export import timm_export_is_current, timm_export_problem  # imports this module

    problem = timm_export_problem(config)
    if problem:
        return f"timm cannot load this model: {problem}", None
    if not timm_export_is_current(model_dir):
        return None, None
    source = f"hf-hub:{repo_id}" if repo_id else f"local-dir:{model_dir / 'timm'}"
    usage = f'model = timm.create_model("{source}", pretrained=True).eval()  # model(pixels) is h'
    note = (
        "the `timm/` folder holds the encoder in timm's own format, so that `timm.create_model` with "
        "`hf-hub:` (or `local-dir:` on that folder) gives the same h (the weights beside this card carry "
        "transformers' names)."
    )
    return note, usage


def render_model_card(
    model_dir: str | Path,
    results: dict[str, Any] | None = None,
    training_args: dict[str, Any] | None = None,
    repo_id: str | None = None,
    template_path: str | Path | None = None,
    license: str = DEFAULT_LICENSE,
    dataset_root: str | Path | None = None,
) -> ModelCard:
    """The model card of a probed SimCLR model folder, from the package's `model_card_template.md`.

    Numbers are those of `results.json` (and of `semi_supervised.json`, the fine-tuning table, when the
    folder holds one): accuracies in the tables are shown in percent (100 x the stored fraction, which has
    4 digits, so nothing is rounded away) and in the `model-index` metadata as the stored fractions, which
    the Hub shows on the model page. Hardware and wall times come from the runs' records. Rendering reads
    JSON files only: no weights, no network.

    Args:
        model_dir (`str` or `Path`): local model folder (its `config.json` describes the model).
        results (`dict`, *optional*): the probe's results; read from `results.json` in the folder if None.
        training_args (`dict`, *optional*): the pretraining arguments; read from `training_args.json`.
        repo_id (`str`, *optional*): Hub id used in the usage snippet and as the model's name; defaults
            to the folder's path (the snippet then loads the local folder).
        template_path (`str` or `Path`, *optional*): defaults to `MODEL_CARD_TEMPLATE`, shipped in the package.
        license (`str`, defaults to `"apache-2.0"`): the Hub license id of the card (the project's license).
        dataset_root (`str` or `Path`, *optional*): see [`describe_dataset`]; for runs made on another machine.

    Returns:
        `huggingface_hub.ModelCard`; `card.save(path)` writes it.

    Raises:
        FileNotFoundError: if there are no results (run `scripts/linear_probe.py` first).
        ValueError: if the folder is not a SimCLR model.
    """
    from huggingface_hub import ModelCard, ModelCardData

    model_dir = Path(model_dir)
    config = load_simclr_config(model_dir)
    results = results if results is not None else _read_json(model_dir / RESULTS_FILE)
    if results is None:
        raise FileNotFoundError(
            f"{model_dir} has no {RESULTS_FILE}: run `python scripts/linear_probe.py --model_name_or_path "
            f"{model_dir} --dataset_name ...` first, or pass results=."
        )
    training_args = (
        training_args if training_args is not None else _read_json(model_dir / TRAINING_ARGS_FILE) or {}
    )
    template_path = Path(template_path) if template_path is not None else MODEL_CARD_TEMPLATE
    if not template_path.is_file():
        raise FileNotFoundError(f"model card template {template_path} not found; pass template_path=.")
    model_name = (repo_id or str(model_dir.resolve())).rstrip("/").split("/")[-1]
    timm_note, timm_usage = _timm_note(model_dir, config, repo_id)
    repo_id = repo_id or str(model_dir)
    eval_dataset = describe_dataset(results["dataset"]["name"], dataset_root)
    pretraining_dataset = describe_dataset(training_args.get("dataset_name"), dataset_root)
    from .semi_supervised import SEMI_SUPERVISED_FILE, format_semi_supervised_table  # imports this module

    semi_supervised = _read_json(model_dir / SEMI_SUPERVISED_FILE)
    processor = _read_json(model_dir / IMAGE_PROCESSOR_FILE) or {}
    pretraining_data = f"Pretrained without labels on {pretraining_dataset['name']}"
    if training_args.get("dataset_config_name"):
        pretraining_data += f" (configuration `{training_args['dataset_config_name']}`)"
    split = training_args.get("train_split") or training_args.get("split")
    pretraining_data += f", split `{split}`." if split else "."
    pretraining_data += " The run's arguments (`training_args.json`):" if training_args else ""

    limitations = [
        f"The encoder was trained only on {pretraining_dataset['name']} at {config.image_size}x"
        f"{config.image_size} pixels; images far from that distribution or size are untested.",
        f"Quality is measured with frozen features on {eval_dataset['name']} only (linear probe and kNN); "
        "no fine-tuning, robustness or bias evaluation was done."
        if semi_supervised is None
        else f"Quality is measured on {eval_dataset['name']} only (linear probe and kNN on frozen features, "
        "fine-tuning on label fractions); no robustness or bias evaluation was done.",
        f"All numbers come from one pretraining run and one probe seed ({results['seed']}); run-to-run "
        "variation is not measured.",
    ]
    if results["dataset"].get("max_train_samples") or results["dataset"].get("max_eval_samples"):
        limitations.append(
            f"The probes used a subset of the data ({results['split_sizes']['train']} training and "
            f"{results['split_sizes']['eval']} evaluation images), not the full splits."
        )
    for note in pretraining_dataset["notes"] + eval_dataset["notes"]:
        if note not in limitations:
            limitations.append(note)

    plots = [
        (PLOT_TITLES[name], file)
        for name, file in (results.get("plots") or {}).items()
        if name in PLOT_TITLES and file.endswith(".png") and (model_dir / file).is_file()
    ]
    probe = results.get("linear_probe", {})
    hub_datasets = list(dict.fromkeys(d["id"] for d in (pretraining_dataset, eval_dataset) if d["hub"]))
    card_data = ModelCardData(
        model_name=model_name,
        license=license,
        library_name="transformers",
        pipeline_tag="image-feature-extraction",
        tags=[
            "simclr",
            "self-supervised-learning",
            "contrastive-learning",
            "image-feature-extraction",
            *(["timm"] if timm_usage else []),  # only where timm loads the folder
        ],
        datasets=hub_datasets or None,
        eval_results=_eval_results(results, eval_dataset, semi_supervised),
    )
    summary = (
        f"A SimCLR encoder (timm `{config.backbone}`) pretrained with contrastive learning; its frozen features "
        f"reach {_percent(results['linear_top1'])}% linear-probe top-1 on {eval_dataset['name']} "
        f"(split `{results['dataset']['eval_split']}`)."
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        summary=summary,
        repo_id=repo_id,
        backbone=config.backbone,
        cifar_stem=config.cifar_stem,
        hidden_size=results.get("feature_dim", "the backbone's width of"),
        projection_head=_projection_head_text(config, results.get("feature_dim")),
        loss_temperature=config.loss_temperature,
        image_size=config.image_size,
        image_mean=processor.get("image_mean"),
        image_std=processor.get("image_std"),
        pretraining_data=pretraining_data,
        hyperparameters=[  # never a credential, should a run have recorded one
            (name, _table_cell(value)) for name, value in training_args.items() if "token" not in name.lower()
        ],
        eval_dataset=eval_dataset["name"],
        train_split=results["dataset"]["train_split"],
        eval_split=results["dataset"]["eval_split"],
        train_size=results["split_sizes"]["train"],
        eval_size=results["split_sizes"]["eval"],
        weight_decays=probe.get("weight_decays"),
        holdout_percent=f"{100 * probe.get('holdout_fraction', 0.1):g}",
        knn_temperature=results.get("knn_temperature", 0.1),
        seed=results["seed"],
        results_rows=_results_rows(results),
        per_class_rows=[
            (
                row["name"],
                _percent(row["precision"]),
                _percent(row["recall"]),
                _percent(row["f1"]),
                row["support"],
            )
            for row in results.get("per_class", [])
        ],
        plots=plots,
        limitations=limitations,
        timm_note=timm_note,
        timm_usage=timm_usage,
        compute_rows=_compute_rows(model_dir, training_args, results, semi_supervised),
        semi_supervised_table=format_semi_supervised_table(semi_supervised) if semi_supervised else None,
    )


def write_model_card(
    model_dir: str | Path,
    results: dict[str, Any] | None = None,
    training_args: dict[str, Any] | None = None,
    repo_id: str | None = None,
    template_path: str | Path | None = None,
    license: str = DEFAULT_LICENSE,
    dataset_root: str | Path | None = None,
) -> Path:
    """Render the model card (see [`render_model_card`]) and write it as `README.md` in `model_dir`.

    Returns:
        `Path` of the `README.md`.
    """
    card = render_model_card(model_dir, results, training_args, repo_id, template_path, license, dataset_root)
    return save_model_card(card, model_dir)


def save_model_card(card: ModelCard, model_dir: str | Path) -> Path:
    """Write `card` as `README.md` in `model_dir`, through a temporary file (never half-written).

    Returns:
        `Path` of the `README.md`.
    """
    return write_text_atomically(Path(model_dir) / MODEL_CARD_FILE, str(card))


# ----------------------------------------------------------------------------------------------
# Sharing on the Hub
# ----------------------------------------------------------------------------------------------

_FILE_ORIGINS = {
    CONFIG_FILE: "pretraining (hf_simclr.hub.save_model_folder)",
    IMAGE_PROCESSOR_FILE: "pretraining (hf_simclr.hub.save_model_folder)",
    TRAINING_ARGS_FILE: "pretraining (hf_simclr.hub.save_model_folder with training_args)",
    RESULTS_FILE: "scripts/linear_probe.py",
    MODEL_CARD_FILE: "hf_simclr.hub.write_model_card (scripts/push_to_hub.py writes it unless --no_write_card)",
    **dict.fromkeys(CODE_FILES, "SimCLR save_pretrained (hf_simclr.hub.save_model_folder)"),
}


def check_model_folder(
    folder: str | Path, require_results: bool = True, require_card: bool = True
) -> SimCLRConfig:
    """Check that a folder is complete and loads as a SimCLR model, before anything is uploaded.

    Args:
        folder (`str` or `Path`): the local model folder.
        require_results (`bool`, defaults to True): also require the probe's `results.json` and the
            model card rendered from it (pretraining's `--push_to_hub` uploads before any probe has run;
            `scripts/push_to_hub.py` adds both later).
        require_card (`bool`, defaults to True): with `require_results`, also require the model card
            (False when the card is written at upload time, see [`push_model_folder`]).

    Returns:
        The folder's `SimCLRConfig`.

    Raises:
        FileNotFoundError: if the folder or a required file is missing (the message says which and
            what writes it).
        ValueError: if it is not a SimCLR model or its weights do not load into the encoder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass the model folder written by pretraining.")
    optional = () if require_results else (RESULTS_FILE, MODEL_CARD_FILE)
    optional += () if require_card else (MODEL_CARD_FILE,)
    required = [name for name in REQUIRED_FILES if name not in optional]
    missing = [name for name in required if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in WEIGHTS_FILES):
        missing.insert(0, WEIGHTS_FILES[0])
    if missing:
        reasons = "; ".join(
            f"{name} (written by {_FILE_ORIGINS.get(name, 'pretraining')})" for name in missing
        )
        raise FileNotFoundError(f"{folder} is not ready to share, it lacks: {reasons}.")
    config = load_simclr_config(folder)
    load_encoder(folder)
    return config


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


OFFLINE_MESSAGE = (
    "the Hugging Face Hub is in offline mode (HF_HUB_OFFLINE is set), so nothing can be pushed: "
    "unset HF_HUB_OFFLINE (and HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE if set) on a machine that "
    "reaches huggingface.co, then push again."
)


def check_repo_id(repo_id: str) -> None:
    """Refuse a repository id that the Hub would refuse, before any work.

    Raises:
        ValueError: naming the id, what is wrong with it and the accepted form.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(
            f"{repo_id!r} is not a Hub repository id ({error}). Use 'user/name' or 'org/name': letters, "
            f"digits, '-', '_' and '.', at most 96 characters."
        ) from error


def hub_token(token: str | None = None) -> str:
    """The token to push with: `token`, else `HF_TOKEN` or the one `hf auth login` stored.

    Raises:
        RuntimeError: in offline mode, or when no token is found (the message says how to get one).
    """
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE or _truthy(os.environ.get("HF_HUB_OFFLINE")):
        raise RuntimeError(OFFLINE_MESSAGE)
    token = token or get_token()
    if not token:
        raise RuntimeError(
            "no Hugging Face token: run `hf auth login`, or set HF_TOKEN to a token with write access "
            "(https://huggingface.co/settings/tokens), or pass --token."
        )
    return token


def push_model_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    commit_message: str = "Upload SimCLR model (hf_simclr)",
    require_results: bool = True,
    model_card: ModelCard | None = None,
) -> Any:
    """Upload a checked model folder to the Hub as one commit.

    The repository id, offline mode, the token and the folder ([`check_model_folder`]) are checked
    before any network call; the repository is created if needed, and every file goes up in a single
    `upload_folder` commit, so the repository never holds half a model. The feature cache and temporary
    files stay behind (`UPLOAD_IGNORE_PATTERNS`). Nothing in the folder changes unless the upload starts.

    Args:
        folder (`str` or `Path`): the model folder (weights, config, code, processor, card, results).
        repo_id (`str`): `"user/name"` or `"org/name"`.
        private (`bool`, defaults to False): create the repository private (an existing one is unchanged).
        revision (`str`, *optional*): branch to commit to (created from main if missing); with
            `create_pr`, the branch the pull request targets.
        create_pr (`bool`, defaults to False): open a pull request instead of committing directly.
        token (`str`, *optional*): defaults to `HF_TOKEN` or the stored login.
        commit_message (`str`): the commit's title.
        require_results (`bool`, defaults to True): see [`check_model_folder`].
        model_card (`ModelCard`, *optional*): written as the folder's `README.md` once the repository
            is ready, just before the upload (e.g. the card rendered with `repo_id`).

    Returns:
        `huggingface_hub.CommitInfo` of the commit (`.commit_url`, `.pr_url`).

    Raises:
        ValueError: an invalid `repo_id`, or from [`check_model_folder`].
        FileNotFoundError: from [`check_model_folder`].
        RuntimeError: offline mode or no token.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    folder = Path(folder)
    check_repo_id(repo_id)
    token = hub_token(token)
    check_model_folder(folder, require_results=require_results, require_card=model_card is None)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision not in (None, "main") and not create_pr:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        if model_card is not None:
            save_model_card(model_card, folder)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type="model",
            revision=revision,
            create_pr=create_pr,
            commit_message=commit_message,
            ignore_patterns=UPLOAD_IGNORE_PATTERNS,
        )
    except OfflineModeIsEnabled as error:
        raise RuntimeError(OFFLINE_MESSAGE) from error
