"""Render the model card of every published recipe in results/, as the Hub would show it.

    python scripts/render_cards.py

For each results/<name>/ folder listed in PUBLISHED_REPOS, the card is rendered from the folder's
results.json, training_args.json, config.json (and semi_supervised.json, wall_times.json when present)
with the Hub repository's id, and written to model_cards/<name>.md and results/<name>/README.md. It needs
neither the weights nor the network. Runs made on another machine recorded their local dataset path
(e.g. .data/cifar10); --dataset_root says where that dataset's folder is here, for its name and notes.
"""

from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from hf_simclr.reports.card import render_published_cards

REPO_ROOT = Path(__file__).resolve().parents[1]
# results/<folder> -> the Hub repository it is (to be) published as.
PUBLISHED_REPOS = {"cifar10-resnet18": "hf-simclr/simclr-resnet18-cifar10"}


@dataclass
class RenderArguments:
    results_dir: str = field(default=str(REPO_ROOT / "results"), metadata={"help": "Published runs."})
    cards_dir: str = field(default=str(REPO_ROOT / "model_cards"), metadata={"help": "Where <name>.md goes."})
    dataset_root: str = field(
        default=str(REPO_ROOT.parent / "shared" / "datasets"),
        metadata={"help": "Folder holding the local datasets the runs recorded (by folder name)."},
    )


def main() -> None:
    (args,) = HfArgumentParser(RenderArguments).parse_args_into_dataclasses()
    try:
        written = render_published_cards(args.results_dir, args.cards_dir, PUBLISHED_REPOS, args.dataset_root)
    except ValueError as error:
        raise SystemExit(f"{error} ({__file__})") from None
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
