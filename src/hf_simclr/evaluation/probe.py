"""The whole evaluation of a model folder (`scripts/linear_probe.py`), as a sequence of named, timed steps.

load the model -> decode the splits -> features (h, z) -> probes on h and z -> per class, label fractions and
the random-init baseline on h -> plots -> `results.json` (and the model card, in the model folder).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..arguments import UsageError
from ..augmentation import AugmentationConfig
from ..data import label_names
from ..devices import default_device, device_description
from ..folder_format import (
    CONFIG_FILE,
    FEATURE_CACHE_DIR,
    LOG_HISTORY_FILE,
    MODEL_CARD_FILE,
    RESULTS_FILE,
    TRAINING_ARGS_FILE,
    feature_cache_file,
    write_json_atomically,
)
from ..folder_hold import hold_folder, holds_folders
from ..model_folder import is_generated, read_json, read_json_lines
from ..modeling_simclr import SimCLRModel
from ..paths import WRITE_DIR, WRITE_FILE, check_path, local_path
from ..reports.card import write_model_card
from ..reports.plots import write_probe_plots
from .arguments import FEATURE_CHOICES, LinearProbeArguments
from .features import FrozenModel, LabeledSplit, cached_features, decode_labeled_split, load_frozen_model
from .knn import KNN_TEMPERATURE
from .label_fractions import label_fraction_subsets
from .linear import LinearProbe, evaluate_representations, fit_linear_probe, probe_metrics
from .metrics import classification_report_dict


@holds_folders  # the output folder is this run's until it returns or raises
def run_linear_probe(args: LinearProbeArguments) -> dict[str, Any]:
    """Evaluate a SimCLR model folder: kNN and linear probe on h (and z), label fractions, baseline.

    Writes `results.json` (and, with `args.plots`, PNG files) into the output directory; when that
    directory is the model folder, also a `README.md` model card. Features are cached in
    `<output_dir>/feature_cache/` and reused while weights, data and view are unchanged.

    Args:
        args ([`LinearProbeArguments`]): what to evaluate, on which data, and how.

    Returns:
        The results dict, as written to `results.json`: the headline on h (`linear_top1`, `linear_top3`,
        `linear_top5`, `knn_top1` = `knn` `{"10": ..., "200": ...}`), `z` (the same metrics on z, when
        probed) or `z_skipped` (why not), `per_class`, `confusion_matrix`, `label_fraction`
        (`{"0.01": {"linear_top1": ...}, ...}`), `label_fraction_skipped` (reason per fraction),
        `random_init_baseline` (None when skipped), `timings_seconds` (per step), `model_config`,
        `dataset`, `split_sizes`, `class_names`, `seed`, ... Accuracies are fractions rounded to 4 digits.

    Raises:
        ValueError: for a folder that is not a SimCLR model, a dataset without labels, or `--features z`
            on a folder without a projection head; all before any image is encoded.
    """
    started = time.perf_counter()
    timer = StepTimer()
    output_dir = resolve_output_dir(args)
    write_card = card_wanted(args, output_dir)
    cache_dir = output_dir / FEATURE_CACHE_DIR
    prepare_output_dir(args, output_dir, cache_dir)
    read_model_records(args)
    device = torch.device(args.device) if args.device else default_device()
    with timer("load_model"):
        model = load_frozen_model(args.model_name_or_path, args.model_revision)
        wanted, z_skipped = features_to_probe(args.features, model)
    with timer("decode"):
        splits = load_labeled_splits(args, model.view)
    with timer("features"):
        features = split_features(
            args, model, splits, cache_dir, "model", device, projection_head="z" in wanted
        )
    names = label_names(splits["train"].dataset, features["train"]["y"], features["eval"]["y"])
    with timer("probe"):
        metrics, probes = {}, {}
        for name in wanted:
            metrics[name], probes[name] = evaluate_representations(
                features["train"][name],
                features["train"]["y"],
                features["eval"][name],
                features["eval"]["y"],
                len(names),
                **probe_options(args, device),
                progress=f"linear probe on {name}",
            )
    results = results_record(args, model, splits, names, metrics, device)
    results["z_skipped"] = z_skipped
    if "h" in wanted:
        results.update(
            steps_on_h(
                args, model, splits, features, probes["h"], names, cache_dir, output_dir, device, timer
            )
        )
    results["timings_seconds"] = timer.seconds
    results["wall_time_seconds"] = round(time.perf_counter() - started, 1)
    write_results(results, output_dir)
    if write_card and "h" in wanted:
        write_model_card(output_dir, results=results)
    return results


def card_wanted(args: LinearProbeArguments, output_dir: Path) -> bool:
    """Whether to write the model card: asked for, into the model folder itself, over no file but one the
    package wrote (a user's README.md is kept, and this says so now, before the work)."""
    is_model_folder = output_dir.resolve() == Path(args.model_name_or_path).resolve()
    if not (args.write_card and is_model_folder and (output_dir / CONFIG_FILE).is_file()):
        return False
    if not is_generated(output_dir / MODEL_CARD_FILE):
        print(
            f"{output_dir / MODEL_CARD_FILE} was not written by hf_simclr, so it is kept and no model card is "
            f"written (results.json is): pass --write_card false to say so, or move it away and run again."
        )
        return False
    return True


def steps_on_h(
    args: LinearProbeArguments,
    model: FrozenModel,
    splits: dict[str, LabeledSplit],
    features: dict[str, dict[str, torch.Tensor]],
    probe: LinearProbe,
    names: list[str],
    cache_dir: Path,
    output_dir: Path,
    device: torch.device,
    timer: StepTimer,
) -> dict[str, Any]:
    """The steps on h only: per-class scores, label fractions, the random-init baseline, the plots."""
    evaluation = features["eval"]
    results: dict[str, Any] = {}
    logits = probe.logits(evaluation["h"].to(device))
    results["per_class"], results["confusion_matrix"] = classification_report_dict(
        logits, evaluation["y"], names
    )
    with timer("label_fractions"):
        results["label_fraction"], results["label_fraction_skipped"] = probe_label_fractions(
            args, features, len(names), names, device
        )
    if not args.skip_baseline:
        with timer("random_init_baseline"):
            results["random_init_baseline"] = random_init_baseline(
                args, model, splits, cache_dir, len(names), device
            )
    if args.plots:
        with timer("plots"):
            results["plots"] = write_probe_plots(
                output_dir,
                args.model_name_or_path,
                splits["train"].dataset,
                splits["eval"].dataset,
                features["train"]["h"],
                evaluation["h"],
                evaluation["y"],
                names,
                results["confusion_matrix"],
                seed=args.seed,
                model_revision=args.model_revision,
                train_y=features["train"]["y"],
            )
    return results


def results_record(
    args: LinearProbeArguments,
    model: FrozenModel,
    splits: dict[str, LabeledSplit],
    names: list[str],
    metrics: dict[str, dict[str, Any]],
    device: torch.device,
) -> dict[str, Any]:
    """The body of `results.json`: the headline metrics on h, those on z beside them, and what was
    evaluated, on what, how. The steps on h only (per class, label fractions, baseline) start empty."""
    headline = metrics.get("h", {})
    return {
        "model_name_or_path": str(args.model_name_or_path),
        "model_revision": args.model_revision,
        "features": list(metrics),
        "linear_top1": headline.get("linear_top1"),
        "linear_top3": headline.get("linear_top3"),
        "linear_top5": headline.get("linear_top5"),
        "knn_top1": headline.get("knn_top1"),
        "knn_temperature": KNN_TEMPERATURE,
        "linear_probe": {
            "weight_decay": headline.get("weight_decay"),
            "holdout_top1": headline.get("holdout_top1"),
            "weight_decays": list(args.weight_decays),
            "holdout_fraction": args.holdout_fraction,
            "optimizer": "L-BFGS, full batch, standardised features",
            "max_iter": args.max_iter,
        },
        "z": metrics.get("z"),
        "per_class": [],
        "confusion_matrix": None,
        "class_names": names,
        "label_fraction": {},
        "label_fraction_skipped": {},
        "random_init_baseline": None,
        "model_config": model.config.to_dict(),
        "eval_view": {"image_size": model.view.image_size, "mean": model.view.mean, "std": model.view.std},
        "feature_dim": headline.get("feature_dim"),
        "dataset": args.dataset_record(),
        "split_sizes": {"train": len(splits["train"].dataset), "eval": len(splits["eval"].dataset)},
        "seed": args.seed,
        "device": device_description(device=device),
        "arguments": asdict(args),
    }


def write_results(results: dict[str, Any], output_dir: str | Path, filename: str = RESULTS_FILE) -> Path:
    """Write `results.json` (or `filename`) into `output_dir` (via a temporary file, so never half-written)."""
    return write_json_atomically(Path(output_dir) / filename, results)


class StepTimer:
    """Wall time of each named step of a run (device work included: CUDA is synchronised)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds[step] = round(self.seconds.get(step, 0.0) + time.perf_counter() - started, 2)


def resolve_output_dir(args: LinearProbeArguments) -> Path:
    """`--output_dir`, or the model folder itself (a Hub id without `--output_dir` is refused when the
    arguments are built: [`LinearProbeArguments`])."""
    return Path(args.output_dir if args.output_dir is not None else args.model_name_or_path)


def prepare_output_dir(args: LinearProbeArguments, output_dir: Path, cache_dir: Path) -> None:
    """Every folder the probe writes (the output folder, its feature cache) checked writable, and the output
    folder held for this run ([`hold_folder`]), before the model is loaded.

    Raises:
        UsageError: for a folder that cannot be written (the model folder on a read-only mount, when it is
            the default output) or one another run holds.
    """
    flag = "output_dir" if args.output_dir is not None else "model_name_or_path"
    try:
        for folder in (output_dir, cache_dir):
            check_path(flag, str(folder), WRITE_DIR)
        check_path(flag, str(output_dir / RESULTS_FILE), WRITE_FILE)
    except UsageError as error:
        if args.output_dir is not None:
            raise
        raise UsageError(
            f"{error} The probe writes {RESULTS_FILE}, the card and {FEATURE_CACHE_DIR}/ into the model folder "
            f"unless --output_dir is given: pass --output_dir with a folder you can write."
        ) from error
    hold_folder(flag, output_dir)


def read_model_records(args: LinearProbeArguments) -> None:
    """Read now the model folder's records that the card and the plots read at the end (its training
    arguments, its log), so that a damaged one is refused before the work, not after it.

    Raises:
        UsageError: naming the damaged file ([`read_json`], [`read_json_lines`]).
    """
    folder = local_path(args.model_name_or_path)
    if folder is None:
        return
    read_json(folder / TRAINING_ARGS_FILE)
    if args.plots and (folder / LOG_HISTORY_FILE).is_file():
        read_json_lines(folder / LOG_HISTORY_FILE)


def features_to_probe(requested: str, model: FrozenModel) -> tuple[tuple[str, ...], str | None]:
    """The representations `--features` asks for that the model has, and why z is left out, if it is.

    Raises:
        ValueError: for `--features z` on a folder without a projection head.
    """
    wanted = FEATURE_CHOICES[requested]
    if "z" in wanted and model.projection_head is None:
        reason = (
            "the model folder holds the encoder only (no projection head), so z = g(h) cannot be computed; "
            "evaluate the folder written by pretraining (SimCLRForPreTraining) to probe z"
        )
        if wanted == ("z",):
            raise UsageError(f"--features z: {reason}.")
        return ("h",), reason
    return wanted, None


def load_labeled_splits(args: LinearProbeArguments, view: AugmentationConfig) -> dict[str, LabeledSplit]:
    """The train and eval splits of `args`, decoded to the view's size (through the decoded cache); both are
    loaded (and so checked: present, labeled) before either is decoded."""
    rows = dict(zip(("train", "eval"), args.load_labeled_splits(args.seed), strict=True))
    return {
        name: decode_labeled_split(
            dataset, view.image_size, args.decoded_cache_dir, args.preprocessing_num_workers
        )
        for name, dataset in rows.items()
    }


def split_features(
    args: LinearProbeArguments,
    model: FrozenModel,
    splits: dict[str, LabeledSplit],
    cache_dir: Path,
    tag: str,
    device: torch.device,
    encoder: SimCLRModel | None = None,
    projection_head: bool = True,
) -> dict[str, dict[str, torch.Tensor]]:
    """Features (`h`, `z`, `y`) of the train and eval splits, cached as `features_<tag>_<split>.safetensors`.

    `encoder` replaces the model's encoder (the random-init baseline, h only); `projection_head=False`
    leaves z out."""
    return {
        name: cached_features(
            cache_dir / feature_cache_file(tag, name),
            model,
            split,
            device,
            args.batch_size,
            projection_head=projection_head and encoder is None,
            encoder=encoder,
            progress=f"features ({tag}, {name})",
        )
        for name, split in splits.items()
    }


def probe_label_fractions(
    args: LinearProbeArguments,
    features: dict[str, dict[str, torch.Tensor]],
    num_classes: int,
    names: Sequence[str],
    device: torch.device,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Linear probes on h trained with class-balanced fractions of the train labels.

    Returns:
        `(label_fraction, skipped)`: metrics per usable fraction (`"0.01": {...}`), reason per skipped one.
    """
    train, evaluation = features["train"], features["eval"]
    subsets, skipped = label_fraction_subsets(train["y"], args.label_fractions, args.seed, names)
    results = {}
    for fraction, subset in subsets.items():
        probe = fit_linear_probe(
            train["h"][subset].to(device),
            train["y"][subset].to(device),
            num_classes,
            args.weight_decays,
            args.holdout_fraction,
            args.seed,
            args.max_iter,
            progress=f"linear probe on {100 * fraction:g}% of the labels",
        )
        metrics = probe_metrics(probe, evaluation["h"].to(device), evaluation["y"].to(device))
        results[f"{fraction:g}"] = {**metrics, "num_train_samples": len(subset)}
    return results, {f"{fraction:g}": reason for fraction, reason in skipped.items()}


def random_init_baseline(
    args: LinearProbeArguments,
    model: FrozenModel,
    splits: dict[str, LabeledSplit],
    cache_dir: Path,
    num_classes: int,
    device: torch.device,
) -> dict[str, Any]:
    """The same evaluation of h for an encoder of the same architecture with random weights (seeded)."""
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
        torch.manual_seed(args.seed)
        random_encoder = SimCLRModel(model.config).eval()
    features = split_features(args, model, splits, cache_dir, "random_init", device, encoder=random_encoder)
    metrics, _ = evaluate_representations(
        features["train"]["h"],
        features["train"]["y"],
        features["eval"]["h"],
        features["eval"]["y"],
        num_classes,
        **probe_options(args, device),
        progress="random-init baseline: linear probe",
    )
    return {
        key: metrics[key] for key in ("linear_top1", "linear_top3", "linear_top5", "knn_top1", "weight_decay")
    }


def probe_options(args: LinearProbeArguments, device: torch.device) -> dict[str, Any]:
    return dict(
        knn_k=args.knn_k,
        weight_decays=args.weight_decays,
        holdout_fraction=args.holdout_fraction,
        seed=args.seed,
        max_iter=args.max_iter,
        device=device,
    )
