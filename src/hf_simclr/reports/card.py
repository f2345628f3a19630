"""The model card of a probed SimCLR model folder, rendered from its files only (no weights, no network).

Numbers are those of `results.json` (and of `semi_supervised.json`, the fine-tuning table, when the folder
holds one): accuracies in the tables are shown in percent (100 x the stored fraction, which has 4 digits, so
nothing is rounded away) and in the `model-index` metadata as the stored fractions, which the Hub shows on
the model page. Hardware and wall times come from the runs' records. No path of the machine that ran the runs
is shown: datasets, models and folders are named as [`hf_simclr.reports.naming`] names them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..arguments import UsageError
from ..folder_format import (
    IMAGE_PROCESSOR_FILE,
    MODEL_CARD_FILE,
    MODEL_CARD_TEMPLATE_FILE,
    RESULTS_FILE,
    SEMI_SUPERVISED_FILE,
    TIMM_SUBFOLDER,
    TRAINING_ARGS_FILE,
    WALL_TIMES_FILE,
)
from ..model_folder import DEFAULT_LICENSE, load_simclr_config, read_json, write_generated_text
from ..timm_export import timm_export_is_current, timm_export_problem
from .naming import describe_dataset, shown_value
from .semi_supervised import format_semi_supervised_table
from .tables import percent

# A fine-tuning or distillation row of the semi-supervised table, as the card's compute table names its run.
COMPUTE_STAGES = {
    "finetune_simclr": "Fine-tuning from SimCLR",
    "finetune_simclr_head": "Fine-tuning from SimCLR (a head layer)",
    "distill_self": "Self-distillation",
    "distill_smaller": "Distillation into a smaller student",
    "finetune_random": "Fine-tuning from random init",
}


if TYPE_CHECKING:
    from huggingface_hub import ModelCard

    from ..configuration_simclr import SimCLRConfig

# Package data (pyproject.toml), so that every install, editable or not, can write model cards.
MODEL_CARD_TEMPLATE = Path(__file__).resolve().with_name(MODEL_CARD_TEMPLATE_FILE)

# How every report reads a wall time ([`wall_time`]): the same sentence under each compute table.
WALL_TIME_NOTE = (
    f"Wall times are those the runs recorded (`{TRAINING_ARGS_FILE}`, `{RESULTS_FILE}`): the job from its start "
    f"to its end, data loading, compilation and checkpoints included. Where `{WALL_TIMES_FILE}` keeps them, the "
    f"whole commands' times follow: the process from its start to its exit, Python's start and the imports "
    f"included."
)

PLOT_TITLES = {
    "training_curves": "Pretraining curves",
    "tsne": "t-SNE of the evaluation images' representations",
    "nearest_neighbors": "Nearest training images (cosine on h)",
    "confusion_matrix": "Linear probe confusion matrix",
}


def render_model_card(
    model_dir: str | Path,
    results: dict[str, Any] | None = None,
    training_args: dict[str, Any] | None = None,
    repo_id: str | None = None,
    template_path: str | Path | None = None,
    license: str = DEFAULT_LICENSE,
    dataset_root: str | Path | None = None,
    source_datasets: dict[str, str] | None = None,
) -> ModelCard:
    """The model card of a probed SimCLR model folder, from the package's `model_card_template.md`.

    Args:
        model_dir (`str` or `Path`): local model folder (its `config.json` describes the model).
        results (`dict`, *optional*): the probe's results; read from `results.json` in the folder if None.
        training_args (`dict`, *optional*): the pretraining arguments; read from `training_args.json`.
        repo_id (`str`, *optional*): Hub id used in the usage snippet and as the model's name; without it the
            model is named after its folder, and the snippet loads `path/to/<that name>` (a card never shows
            the machine's path).
        template_path (`str` or `Path`, *optional*): defaults to `MODEL_CARD_TEMPLATE`, shipped in the package.
        license (`str`, defaults to `"apache-2.0"`): the Hub license id of the card (the project's license).
        dataset_root (`str` or `Path`, *optional*): see [`describe_dataset`]; for runs made on another machine.
        source_datasets (`dict`, *optional*): `{local folder name: Hub id}`, see [`describe_dataset`]: the Hub
            dataset a local copy was made from, listed in the card's `datasets` metadata.

    Returns:
        `huggingface_hub.ModelCard`; `card.save(path)` writes it.

    Raises:
        FileNotFoundError: if there are no results (run `scripts/linear_probe.py` first).
        ValueError: if the folder is not a SimCLR model.
    """
    from huggingface_hub import ModelCard

    model_dir = Path(model_dir)
    config = load_simclr_config(model_dir)
    results = results if results is not None else _read_results(model_dir)
    training_args = (
        training_args if training_args is not None else read_json(model_dir / TRAINING_ARGS_FILE) or {}
    )
    template_path = Path(template_path) if template_path is not None else MODEL_CARD_TEMPLATE
    if not template_path.is_file():
        raise FileNotFoundError(f"model card template {template_path} not found; pass template_path=.")
    semi_supervised = read_json(model_dir / SEMI_SUPERVISED_FILE)
    datasets = {
        "eval": describe_dataset(results["dataset"]["name"], dataset_root, source_datasets),
        "pretraining": describe_dataset(training_args.get("dataset_name"), dataset_root, source_datasets),
    }
    model_name = (repo_id or str(model_dir.resolve())).rstrip("/").split("/")[-1]
    loaded_as = repo_id or f"path/to/{model_name}"  # the snippet's name of the model: never a machine's path
    timm_note, timm_usage = _timm_note(model_dir, config, loaded_as, repo_id is not None)
    card_data = _card_data(model_name, license, results, datasets, semi_supervised, timm_usage is not None)
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        repo_id=loaded_as,
        timm_note=timm_note,
        timm_usage=timm_usage,
        summary=_summary(config, results, datasets["eval"], training_args),
        **_model_section(model_dir, config, results),
        **_training_section(training_args, datasets["pretraining"]),
        **_evaluation_section(model_dir, results, datasets["eval"], semi_supervised),
        limitations=_limitations(config, results, datasets, semi_supervised),
        compute_rows=compute_rows(model_dir, training_args, results, semi_supervised),
        wall_time_note=WALL_TIME_NOTE,
    )


def write_model_card(
    model_dir: str | Path,
    results: dict[str, Any] | None = None,
    training_args: dict[str, Any] | None = None,
    repo_id: str | None = None,
    template_path: str | Path | None = None,
    license: str = DEFAULT_LICENSE,
    dataset_root: str | Path | None = None,
    source_datasets: dict[str, str] | None = None,
) -> Path:
    """Render the model card (see [`render_model_card`]) and write it as `README.md` in `model_dir`.

    Returns:
        `Path` of the `README.md`.
    """
    card = render_model_card(
        model_dir, results, training_args, repo_id, template_path, license, dataset_root, source_datasets
    )
    return save_model_card(card, model_dir)


def save_model_card(card: ModelCard, model_dir: str | Path) -> Path:
    """Write `card` as `README.md` in `model_dir`, through a temporary file (never half-written).

    Returns:
        `Path` of the `README.md`.
    """
    return write_generated_text(Path(model_dir) / MODEL_CARD_FILE, str(card), "pass --write_card false")


def _read_results(model_dir: Path) -> dict[str, Any]:
    results = read_json(model_dir / RESULTS_FILE)
    if results is None:
        raise UsageError(
            f"{model_dir} has no {RESULTS_FILE}: run `python scripts/linear_probe.py --model_name_or_path "
            f"{model_dir} --dataset_name ...` first, or pass results=."
        )
    return results


# ----------------------------------------------------------------------------------------------
# The card's sections: each gives the template variables of one part of the card
# ----------------------------------------------------------------------------------------------


def _card_data(
    model_name: str,
    license: str,
    results: dict[str, Any],
    datasets: dict[str, dict[str, Any]],
    semi_supervised: dict[str, Any] | None,
    timm_loads_it: bool,
) -> Any:
    """The card's YAML metadata: license, tags, datasets (Hub ones, and those local copies were made from,
    listed once) and the `model-index`."""
    from huggingface_hub import ModelCardData

    used = (datasets["pretraining"], datasets["eval"])
    hub_datasets = list(
        dict.fromkeys(d["id"] if d["hub"] else d["source"] for d in used if d["hub"] or d["source"])
    )
    tags = ["simclr", "self-supervised-learning", "contrastive-learning", "image-feature-extraction"]
    return ModelCardData(
        model_name=model_name,
        license=license,
        library_name="transformers",
        pipeline_tag="image-feature-extraction",
        tags=tags + (["timm"] if timm_loads_it else []),  # only where timm loads the folder
        datasets=hub_datasets or None,
        eval_results=_eval_results(results, datasets["eval"], semi_supervised),
    )


def _summary(
    config: SimCLRConfig, results: dict[str, Any], eval_dataset: dict[str, Any], training_args: dict[str, Any]
) -> str:
    summary = (
        f"A SimCLR encoder (timm `{config.backbone}`) pretrained with contrastive learning; its frozen features "
        f"reach {percent(results['linear_top1'])}% linear-probe top-1 on {eval_dataset['name']} "
        f"(split `{results['dataset']['eval_split']}`)."
    )
    budget = tiny_budget(training_args)
    summary = f"{summary} {budget}" if budget else summary
    warning = _below_baseline(results)
    return f"{summary}\n\n**{warning}**" if warning else summary


TINY_IMAGES = 10_000
TINY_EPOCHS = 10
TINY_STEPS = 1_000


def tiny_budget(training_args: dict[str, Any]) -> str | None:
    """A sentence when the recorded pretraining was a demonstration-sized run, else None.

    The rule: fewer than 10,000 training images (`max_train_samples`), or fewer than 10 epochs, or a
    `max_steps` below 1,000; the paper's CIFAR-10 runs see 50,000 images for hundreds of epochs.
    """
    samples = training_args.get("max_train_samples")
    max_steps = training_args.get("max_steps") or 0
    epochs = training_args.get("num_train_epochs")
    reasons = []
    if samples is not None and samples < TINY_IMAGES:
        reasons.append(f"{samples} images")
    if max_steps > 0 and max_steps < TINY_STEPS:
        reasons.append(f"{max_steps} steps")
    elif max_steps <= 0 and epochs is not None and epochs < TINY_EPOCHS:
        reasons.append(f"{epochs:g} epochs")
    if not reasons:
        return None
    return (
        f"Its pretraining budget was tiny ({', '.join(reasons)}): a demonstration or test run, "
        f"not a pretrained encoder to reuse."
    )


def _below_baseline(results: dict[str, Any]) -> str | None:
    """A warning when the probe on h does not beat the same probe on a random-init encoder, else None."""
    baseline = (results.get("random_init_baseline") or {}).get("linear_top1")
    if baseline is None or results["linear_top1"] > baseline:
        return None
    return (
        f"Warning: this is not above the {percent(baseline)}% of the same probe on an encoder with random "
        f"weights: the pretraining did not give a better representation than no training (too short a run, "
        f"too little data, or a failed one). Do not use these weights as a pretrained encoder."
    )


def _model_section(model_dir: Path, config: SimCLRConfig, results: dict[str, Any]) -> dict[str, Any]:
    """The "Model" section: encoder, head, loss, the input view."""
    processor = read_json(model_dir / IMAGE_PROCESSOR_FILE) or {}
    return dict(
        backbone=config.backbone,
        cifar_stem=config.cifar_stem,
        hidden_size=results.get("feature_dim", "the backbone's width of"),
        projection_head=_projection_head_text(config, results.get("feature_dim")),
        loss_temperature=config.loss_temperature,
        image_size=config.image_size,
        image_mean=processor.get("image_mean"),
        image_std=processor.get("image_std"),
    )


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


def _training_section(training_args: dict[str, Any], dataset: dict[str, Any]) -> dict[str, Any]:
    """The "Training data and recipe" section: the data, and every argument of the run."""
    pretraining_data = f"Pretrained without labels on {dataset['name']}"
    if training_args.get("dataset_config_name"):
        pretraining_data += f" (configuration `{training_args['dataset_config_name']}`)"
    split = training_args.get("train_split") or training_args.get("split")
    pretraining_data += f", split `{split}`." if split else "."
    pretraining_data += " The run's arguments (`training_args.json`):" if training_args else ""
    return dict(
        pretraining_data=pretraining_data,
        hyperparameters=[  # never a credential, should a run have recorded one
            (name, _table_cell(shown_value(value)))
            for name, value in training_args.items()
            if "token" not in name.lower()
        ],
    )


def _table_cell(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _evaluation_section(
    model_dir: Path,
    results: dict[str, Any],
    eval_dataset: dict[str, Any],
    semi_supervised: dict[str, Any] | None,
) -> dict[str, Any]:
    """The "Evaluation" section: the protocol, the results table, per-class scores, plots, fine-tuning."""
    probe = results.get("linear_probe", {})
    plots = [
        (PLOT_TITLES[name], file)
        for name, file in (results.get("plots") or {}).items()
        if name in PLOT_TITLES and file.endswith(".png") and (model_dir / file).is_file()
    ]
    per_class_rows = [
        (row["name"], percent(row["precision"]), percent(row["recall"]), percent(row["f1"]), row["support"])
        for row in results.get("per_class", [])
    ]
    return dict(
        eval_dataset=eval_dataset["name"],
        train_split=results["dataset"]["train_split"],
        eval_split=results["dataset"]["eval_split"],
        train_size=results["split_sizes"]["train"],
        eval_size=results["split_sizes"]["eval"],
        weight_decays=probe.get("weight_decays"),
        holdout_percent=f"{100 * probe.get('holdout_fraction', 0.1):g}",
        knn_temperature=results.get("knn_temperature", 0.1),
        seed=results["seed"],
        results_rows=results_rows(results),
        per_class_rows=per_class_rows,
        plots=plots,
        semi_supervised_table=format_semi_supervised_table(semi_supervised) if semi_supervised else None,
    )


def _limitations(
    config: SimCLRConfig,
    results: dict[str, Any],
    datasets: dict[str, dict[str, Any]],
    semi_supervised: dict[str, Any] | None,
) -> list[str]:
    """What the card's numbers do not say: the data and size trained on, what was evaluated, one seed."""
    pretraining, evaluation = datasets["pretraining"], datasets["eval"]
    measured = (
        f"Quality is measured with frozen features on {evaluation['name']} only (linear probe and kNN); "
        "no fine-tuning, robustness or bias evaluation was done."
        if semi_supervised is None
        else f"Quality is measured on {evaluation['name']} only (linear probe and kNN on frozen features, "
        "fine-tuning on label fractions); no robustness or bias evaluation was done."
    )
    limitations = [
        f"The encoder was trained only on {pretraining['name']} at {config.image_size}x"
        f"{config.image_size} pixels; images far from that distribution or size are untested.",
        measured,
        f"All numbers come from one pretraining run and one probe seed ({results['seed']}); run-to-run "
        "variation is not measured.",
    ]
    warning = _below_baseline(results)
    if warning:
        limitations.insert(0, warning)
    if results["dataset"].get("max_train_samples") or results["dataset"].get("max_eval_samples"):
        limitations.append(
            f"The probes used a subset of the data ({results['split_sizes']['train']} training and "
            f"{results['split_sizes']['eval']} evaluation images), not the full splits."
        )
    for note in pretraining["notes"] + evaluation["notes"]:
        if note not in limitations:
            limitations.append(note)
    return limitations


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


def results_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(evaluation, this model, random-init encoder) in percent: the card's results table, and results/README.md's."""
    baseline = results.get("random_init_baseline") or {}
    rows = [
        ("Linear probe top-1", percent(results["linear_top1"]), percent(baseline.get("linear_top1"))),
        ("Linear probe top-5", percent(results["linear_top5"]), percent(baseline.get("linear_top5"))),
    ]
    if results.get("linear_top3") is not None:
        top3 = ("Linear probe top-3", percent(results["linear_top3"]), percent(baseline.get("linear_top3")))
        rows.insert(1, top3)
    for k, value in results["knn_top1"].items():
        rows.append((f"kNN top-1 (k={k})", percent(value), percent((baseline.get("knn_top1") or {}).get(k))))
    for fraction, values in results.get("label_fraction", {}).items():
        name = f"Linear probe top-1, {100 * float(fraction):g}% of the labels ({values['num_train_samples']} images)"
        rows.append((name, percent(values["linear_top1"]), "-"))
    z = results.get("z") or {}  # the projection head's output, probed beside h (paper, Section 4.2)
    if z:
        rows.append(
            ("Linear probe top-1 on z = g(h), the projection head's output", percent(z["linear_top1"]), "-")
        )
        rows += [(f"kNN top-1 (k={k}) on z", percent(value), "-") for k, value in z["knn_top1"].items()]
    return rows


def wall_time(seconds: float | None, whole_command: float | None = None) -> str:
    """A stage's wall time as every report shows it: `3.9 min (234 s)`, the run's own record; with the whole
    command's time too (`wall_times.json`), `3.9 min (234 s) in the run, 4.2 min (251 s) for the whole command`."""
    if seconds is None:
        return "-"
    in_run = f"{seconds / 60:.1f} min ({seconds:.0f} s)"
    if whole_command is None:
        return in_run
    return f"{in_run} in the run, {whole_command / 60:.1f} min ({whole_command:.0f} s) for the whole command"


def whole_commands(model_dir: str | Path) -> dict[str, float]:
    """`{"pretraining": s, "evaluation": s}`: the whole commands' wall times, from the process's start to its
    exit (Python's start and the imports included), as a published results folder's `wall_times.json` keeps
    them (`pretrain_seconds`, `probe_seconds`); `{}` for a folder without them. The experiment runner's
    `wall_times.json` (`pretrain_seconds`, `evaluation_seconds`) repeats the runs' own records instead."""
    kept = read_json(Path(model_dir) / WALL_TIMES_FILE) or {}
    if kept.get("probe_seconds") is None or kept.get("pretrain_seconds") is None:
        return {}
    return {"pretraining": kept["pretrain_seconds"], "evaluation": kept["probe_seconds"]}


def compute_rows(
    model_dir: Path,
    training_args: dict[str, Any],
    results: dict[str, Any],
    semi_supervised: dict[str, Any] | None,
) -> list[tuple[str, str, str]]:
    """(stage, hardware, wall time) of pretraining, evaluation and fine-tuning runs, as their records
    hold them (`device`, `wall_time_seconds`), with the whole commands' times where kept ([`whole_commands`]);
    a results/ folder's `wall_times.json` names the GPU of runs that did not record it."""
    fallback = (read_json(model_dir / WALL_TIMES_FILE) or {}).get("gpu") or "not recorded"
    whole = whole_commands(model_dir)
    rows = []
    stages = (
        ("pretraining", "Pretraining", training_args),
        ("evaluation", "Evaluation (probes, kNN, baseline, plots)", results),
    )
    for stage, name, record in stages:
        if record.get("wall_time_seconds") is not None:
            hardware = record.get("device") or fallback
            rows.append((name, hardware, wall_time(record["wall_time_seconds"], whole.get(stage))))
    for entry in (semi_supervised or {}).get("entries", []):
        if entry["method"] != "linear_probe" and entry.get("wall_time_seconds") is not None:
            stage = f"{COMPUTE_STAGES[entry['method']]}, {100 * entry['label_fraction']:g}% of the labels"
            hardware = entry.get("device") or "not recorded"
            rows.append((stage, hardware, wall_time(entry["wall_time_seconds"])))
    return rows


def _timm_note(
    model_dir: Path, config: SimCLRConfig, loaded_as: str, on_the_hub: bool
) -> tuple[str | None, str | None]:
    """(a line on timm for the card, or None; a usage snippet, or None), and whether to tag `timm`: only
    a folder holding a current timm copy of its weights ([`hf_simclr.timm_export`]) is loadable by timm.
    `loaded_as`: the Hub id (`on_the_hub`) or the folder's name in the usage snippet."""
    problem = timm_export_problem(config)
    if problem:
        return f"timm cannot load this model: {problem}", None
    if not timm_export_is_current(model_dir):
        return None, None
    source = f"hf-hub:{loaded_as}" if on_the_hub else f"local-dir:{loaded_as}/{TIMM_SUBFOLDER}"
    usage = f'model = timm.create_model("{source}", pretrained=True).eval()  # model(pixels) is h'
    note = (
        "the `timm/` folder holds the encoder in timm's own format, so that `timm.create_model` with "
        "`hf-hub:` (or `local-dir:` on that folder) gives the same h (the weights beside this card carry "
        "transformers' names)."
    )
    return note, usage
