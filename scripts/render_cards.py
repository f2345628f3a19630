"""Render the model card of every published recipe in results/, as the Hub would show it, and the runs'
numbers in results/README.md and in the README.

    python scripts/render_cards.py

For each results/<name>/ folder listed in results/published.yaml, the card is rendered from the folder's
results.json, training_args.json, config.json (and semi_supervised.json, wall_times.json when present)
with the Hub repository's id, and written to model_cards/<name>.md and results/<name>/README.md; the same
files give the block `results/<name>` of results/README.md and the block `results/<name> in brief` of the
README (--readme), between their marker lines. It needs neither the weights nor the network. Runs made on
another machine recorded their local dataset path (e.g. .data/cifar10); --dataset_root says where that
dataset's folder is here, for its name and notes (no card shows the recorded path). The logic lives in
hf_simclr.reports.command.
"""

from hf_simclr.reports.command import RENDER


def main() -> None:
    RENDER.main()


if __name__ == "__main__":
    main()
