"""Arguments of the evaluation (`scripts/linear_probe.py`, `scripts/snapshot_curve.py`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import ClassVar

from ..arguments import UsageError, check_arguments
from ..conditions import Applies, SameFolder, SeveralValues, Source, all_of, setting_is
from ..dataset_arguments import DatasetArguments, DecodingArguments
from ..paths import READ_DIR, READ_DIR_OR_HUB, WRITE_DIR, check_paths, local_path

DEFAULT_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
FEATURE_CHOICES = {"h": ("h",), "z": ("z",), "both": ("h", "z")}
ON_H = setting_is("features", "h", "both", among=tuple(FEATURE_CHOICES))


@dataclass
class ProbeArguments(DecodingArguments, DatasetArguments):
    """What every evaluation of frozen features takes (`scripts/snapshot_curve.py` too): the model, the data
    ([`DatasetArguments`]), feature extraction and the linear/kNN probe on h. [`LinearProbeArguments`] adds
    what only `scripts/linear_probe.py` does."""

    model_name_or_path: str = field(
        metadata={"help": "SimCLR model folder written by pretraining, or a Hub model id."}
    )
    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where the results, the plots and the feature cache go. Defaults to the model folder "
            "(a local one; linear_probe.py then writes its README.md model card there too)."
        },
    )
    seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the subsets and the held-out split (and of linear_probe.py's label fractions and "
            "random-init baseline)."
        },
    )
    batch_size: int = field(default=1024, metadata={"help": "Images per forward pass of feature extraction."})
    knn_k: list[int] = field(
        default_factory=lambda: [10, 200],
        metadata={"help": "Neighbour counts of the kNN classifier (200 is the InstDisc monitor's choice)."},
    )
    weight_decays: list[float] = field(
        default_factory=lambda: list(DEFAULT_WEIGHT_DECAYS),
        metadata={"help": "Grid of L2 penalties of the linear probe; the held-out split picks one."},
    )
    holdout_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of the train split held out to pick the weight decay."}
    )
    # The held-out rows pick among the weight decays: with one, there is nothing to pick.
    APPLIES: ClassVar[dict[str, Applies]] = {
        "holdout_fraction": Applies(SeveralValues("weight_decays"), "one weight decay is fit on every row")
    }
    max_iter: int = field(default=500, metadata={"help": "L-BFGS iterations per linear probe fit."})
    device: str | None = field(
        default=None, metadata={"help": "torch device; cuda when available by default."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_decoding()
        check_paths(self, {"model_name_or_path": READ_DIR_OR_HUB, "output_dir": WRITE_DIR})
        check_arguments(self, self.value_checks())
        if self.output_dir is None and local_path(self.model_name_or_path) is None:
            raise UsageError(
                f"--model_name_or_path {self.model_name_or_path} is a Hub id: pass --output_dir."
            )

    def check(self) -> None:
        """The check that needs torch: `--device` is on this machine (before: a CUDA device where there is none
        failed with a traceback once the data was loaded)."""
        import torch

        if self.device is None:
            return
        kind, _, index = self.device.partition(":")
        count = {"cpu": 1, "cuda": torch.cuda.device_count(), "mps": int(torch.backends.mps.is_available())}[
            kind
        ]
        if int(index or 0) >= count:
            raise UsageError(
                f"--device {self.device}: torch sees {count} {kind} device(s) on this machine; leave --device out "
                f"(cuda when there is one, else cpu) or pass --device cpu."
            )

    def value_checks(self) -> dict[str, tuple[bool, str]]:
        """`{flag: (valid, what it must be)}` of each value, for [`check_arguments`]."""
        return {
            "seed": (0 <= self.seed < 2**32, "in [0, 2**32)"),
            "batch_size": (self.batch_size >= 1, "a positive integer"),
            "knn_k": (
                bool(self.knn_k) and all(k >= 1 for k in self.knn_k),
                "one or more positive integers",
            ),
            "weight_decays": (
                bool(self.weight_decays) and all(math.isfinite(wd) and wd >= 0 for wd in self.weight_decays),
                "one or more values >= 0",
            ),
            "holdout_fraction": (0 < self.holdout_fraction < 1, "in (0, 1), e.g. 0.1"),
            "max_iter": (self.max_iter >= 1, "a positive integer"),
            "device": (
                self.device is None or re.fullmatch(r"cpu|cuda(:\d+)?|mps", self.device) is not None,
                "cpu, cuda, cuda:N or mps (unset: cuda when available)",
            ),
        }


@dataclass
class LinearProbeArguments(ProbeArguments):
    """Arguments of `scripts/linear_probe.py` (and of [`run_linear_probe`]): [`ProbeArguments`] and what
    only the full evaluation does (z, label fractions, the baseline, plots, the card)."""

    # The steps on h only; the card, written into the model folder; a revision, of a Hub repository.
    APPLIES: ClassVar[dict[str, Applies]] = {
        **{name: Applies(ON_H, "a step on h only") for name in ("label_fractions", "plots", "skip_baseline")},
        "write_card": Applies(
            all_of(SameFolder("output_dir", "model_name_or_path"), ON_H),
            "the card of the model folder, written from the results on h",
        ),
        "model_revision": Applies(Source("model_name_or_path", ("hub",)), "a local folder has no revisions"),
    }

    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the model to pin."})

    features: str = field(
        default="both",
        metadata={
            "help": "Representations to probe: h (the encoder's output, the headline), z (the projection "
            "head's output; the paper's Table 3 shows it is worse), or both. z needs a pretraining "
            "folder (one with the head); with 'both' and no head, z is skipped and the reason recorded."
        },
    )
    label_fractions: list[float] = field(
        default_factory=lambda: [0.01, 0.1],
        metadata={
            "help": "Fractions of the train labels (class-balanced) for extra linear probes; a fraction "
            "that would leave a class without examples is skipped, with the reason in results.json."
        },
    )
    plots: bool = field(default=False, metadata={"help": "Write t-SNE, neighbours, confusion, curve PNGs."})
    skip_baseline: bool = field(default=False, metadata={"help": "Skip the random-init encoder baseline."})
    write_card: bool = field(
        default=True,
        metadata={"help": "Write the README.md model card when the output folder is the model folder."},
    )

    def value_checks(self) -> dict[str, tuple[bool, str]]:
        return {
            **super().value_checks(),
            "features": (self.features in FEATURE_CHOICES, "h, z or both"),
            "label_fractions": (
                all(0 < f <= 1 for f in self.label_fractions),
                "fractions in (0, 1], e.g. 0.01 0.1 (none: no label-fraction probes)",
            ),
        }


@dataclass
class SnapshotArguments:
    """Arguments of `scripts/snapshot_curve.py` besides the probe's ([`ProbeArguments`]: the curve probes h
    of each snapshot, so the full evaluation's z, label fractions, baseline, plots and card do not apply)."""

    snapshots: list[str] | None = field(
        default=None,
        metadata={
            "help": "Snapshot folders (snapshots/epoch_N); default: every one of --model_name_or_path."
        },
    )
    tsne_points: int = field(default=2000, metadata={"help": "Evaluation images per t-SNE panel."})

    def __post_init__(self) -> None:
        check_paths(self, {"snapshots": READ_DIR})
        check_arguments(
            self, {"tsne_points": (self.tsne_points >= 5, "at least 5 images (t-SNE needs a few)")}
        )
