"""Arguments of the evaluation (`scripts/linear_probe.py`, `scripts/snapshot_curve.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
FEATURE_CHOICES = {"h": ("h",), "z": ("z",), "both": ("h", "z")}


@dataclass
class LinearProbeArguments:
    """Arguments of `scripts/linear_probe.py` (and of [`run_linear_probe`])."""

    model_name_or_path: str = field(
        metadata={"help": "SimCLR model folder written by pretraining, or a Hub model id."}
    )
    dataset_name: str = field(
        metadata={
            "help": "Labeled dataset: a Hub id (uoft-cs/cifar10) or a local folder (parquet, imagefolder)."
        }
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration."})
    train_split: str = field(default="train", metadata={"help": "Split the probes are trained on."})
    eval_split: str = field(default="test", metadata={"help": "Split the probes are evaluated on."})
    image_column: str | None = field(default=None, metadata={"help": "Image column (found automatically)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (found automatically)."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Seeded random subset of the train split, for quick runs."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Seeded random subset of the eval split, for quick runs."}
    )
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Hub revision of the dataset to pin."}
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the model to pin."})
    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where results.json, the plots and the feature cache go. Defaults to the model folder "
            "(a local one), where a README.md model card is then written too."
        },
    )
    features: str = field(
        default="both",
        metadata={
            "help": "Representations to probe: h (the encoder's output, the headline), z (the projection "
            "head's output; the paper's Table 3 shows it is worse), or both. z needs a pretraining "
            "folder (one with the head); with 'both' and no head, z is skipped and the reason recorded."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of subsets, held-out split, label fractions, baseline."}
    )
    batch_size: int = field(default=1024, metadata={"help": "Images per forward pass of feature extraction."})
    decoded_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of decoded uint8 splits (.npy, named by dataset fingerprint); pass pretraining's "
            "--decoded_cache_dir to reuse its decoded training split."
        },
    )
    knn_k: list[int] = field(
        default_factory=lambda: [10, 200],
        metadata={"help": "Neighbour counts of the kNN classifier (200 is the InstDisc monitor's choice)."},
    )
    label_fractions: list[float] = field(
        default_factory=lambda: [0.01, 0.1],
        metadata={
            "help": "Fractions of the train labels (class-balanced) for extra linear probes; a fraction "
            "that would leave a class without examples is skipped, with the reason in results.json."
        },
    )
    weight_decays: list[float] = field(
        default_factory=lambda: list(DEFAULT_WEIGHT_DECAYS),
        metadata={"help": "Grid of L2 penalties of the linear probe; the held-out split picks one."},
    )
    holdout_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of the train split held out to pick the weight decay."}
    )
    max_iter: int = field(default=500, metadata={"help": "L-BFGS iterations per linear probe fit."})
    plots: bool = field(default=False, metadata={"help": "Write t-SNE, neighbours, confusion, curve PNGs."})
    skip_baseline: bool = field(default=False, metadata={"help": "Skip the random-init encoder baseline."})
    write_card: bool = field(
        default=True,
        metadata={"help": "Write the README.md model card when the output folder is the model folder."},
    )
    device: str | None = field(
        default=None, metadata={"help": "torch device; cuda when available by default."}
    )

    def __post_init__(self) -> None:
        if self.features not in FEATURE_CHOICES:
            raise ValueError(f"--features {self.features} unknown; use h, z or both.")
        if any(k < 1 for k in self.knn_k):
            raise ValueError(f"--knn_k {self.knn_k}: every k must be >= 1.")
        for fraction in self.label_fractions:
            if not 0.0 < fraction <= 1.0:
                raise ValueError(
                    f"--label_fractions {fraction}: a fraction of the labels must lie in (0, 1]."
                )
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"--holdout_fraction {self.holdout_fraction} must lie in (0, 1), e.g. 0.1.")
        if not self.weight_decays or any(wd < 0 for wd in self.weight_decays):
            raise ValueError(f"--weight_decays {self.weight_decays}: give one or more values >= 0.")
        for name in ("batch_size", "max_iter"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} {getattr(self, name)} must be a positive integer.")


@dataclass
class SnapshotArguments:
    """Arguments of `scripts/snapshot_curve.py` besides the probe's ([`LinearProbeArguments`])."""

    snapshots: list[str] | None = field(
        default=None,
        metadata={
            "help": "Snapshot folders (snapshots/epoch_N); default: every one of --model_name_or_path."
        },
    )
    tsne_points: int = field(default=2000, metadata={"help": "Evaluation images per t-SNE panel."})
