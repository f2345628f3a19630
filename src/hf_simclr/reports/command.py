"""The commands that write reports into folders: the published cards and the published runs' blocks of the
repository's pages, the semi-supervised table (and the card that shows it). Each reads results files only, and
never replaces a file the package did not write (in the repository's pages, only the blocks between its markers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..arguments import UsageError
from ..command import Command
from ..folder_format import (
    CONFIG_FILE,
    MODEL_CARD_FILE,
    PUBLISHED_FILE,
    RESULTS_FILE,
    SEMI_SUPERVISED_FILE,
    SEMI_SUPERVISED_TABLE,
    card_file,
)
from ..model_folder import check_generated, write_generated_text
from .arguments import RenderArguments, TableArguments
from .card import write_model_card
from .published import write_published_pages
from .semi_supervised import write_semi_supervised_table


def published_runs(results_dir: Path) -> dict[str, dict[str, Any]]:
    """The runs `<results_dir>/published.yaml` lists: `{name: {"repo_id": ..., "source_datasets": {...}}}`
    (an entry may be the Hub repository's id alone).

    Raises:
        UsageError: for a folder of results that `published.yaml` does not list, or an entry without `repo_id`.
    """
    import yaml

    listed = yaml.safe_load((results_dir / PUBLISHED_FILE).read_text()) or {}
    published = {
        name: {"repo_id": entry} if isinstance(entry, str) else dict(entry or {})
        for name, entry in listed.items()
    }
    unlisted = sorted(
        p.parent.name for p in results_dir.glob(f"*/{RESULTS_FILE}") if p.parent.name not in published
    )
    if unlisted:
        raise UsageError(
            f"--results_dir {results_dir}: {unlisted[0]}/ has no Hub repository: add `{unlisted[0]}: org/name` to "
            f"{results_dir / PUBLISHED_FILE}."
        )
    for name, entry in published.items():
        if not entry.get("repo_id"):
            raise UsageError(
                f"{results_dir / PUBLISHED_FILE}: {name} has no repo_id; add `repo_id: org/name`."
            )
    return published


def render_published_cards(args: RenderArguments) -> list[Path]:
    """The card of each run `<results_dir>/published.yaml` lists, from its folder's results files (no
    weights, no network), written to `<cards_dir>/<name>.md` and `<results_dir>/<name>/README.md`, as the
    Hub would show it, and the runs' blocks of `<results_dir>/README.md` and of `--readme`
    ([`write_published_pages`]); prints each file written.

    Returns:
        The files written.

    Raises:
        UsageError: for a folder of results that `published.yaml` does not list, or a page without the block
            of a listed run.
    """
    results_dir, cards_dir = Path(args.results_dir), Path(args.cards_dir)
    dataset_root = args.dataset_root if args.dataset_root and Path(args.dataset_root).is_dir() else None
    published = published_runs(results_dir)
    written = []
    for name, entry in published.items():
        readme = write_model_card(
            results_dir / name,
            repo_id=entry["repo_id"],
            dataset_root=dataset_root,
            source_datasets=entry.get("source_datasets"),
        )
        card = write_generated_text(
            cards_dir / card_file(name), readme.read_text(), "pick another --cards_dir"
        )
        written += [card, readme]
    readme = args.readme or results_dir.parent / MODEL_CARD_FILE
    written += write_published_pages(results_dir, readme, published, dataset_root)
    for path in written:
        print(f"wrote {path}")
    return written


# `scripts/render_cards.py`.
RENDER = Command("render_cards.py", (RenderArguments,), "hf_simclr.reports.command:render_published_cards")


def semi_supervised_table(args: TableArguments) -> dict[str, Any]:
    """[`write_semi_supervised_table`] into `--output_dir`, by default the probe's folder (the model folder),
    whose model card is then rendered again with the table; prints the files written.

    Raises:
        UsageError: without `--output_dir` and `--probe_run`, or for runs that cannot be compared.
    """
    output_dir = args.output_dir
    if output_dir is None:
        if args.probe_run is None:
            raise UsageError("pass --output_dir (or --probe_run, whose folder is then the default).")
        probe = Path(args.probe_run)
        output_dir = probe if probe.is_dir() else probe.parent
    output_dir = Path(output_dir)
    probed_model_folder = (output_dir / RESULTS_FILE).is_file() and (output_dir / CONFIG_FILE).is_file()
    if probed_model_folder:  # its card shows the table: it is rendered again, if it is ours
        check_generated(
            output_dir / MODEL_CARD_FILE, "pass another --output_dir to keep it and write the table there"
        )
    table = write_semi_supervised_table(args.finetune_runs, args.probe_run, output_dir)
    written = [output_dir / SEMI_SUPERVISED_FILE, output_dir / SEMI_SUPERVISED_TABLE]
    if probed_model_folder:
        written.append(write_model_card(output_dir))
    for path in written:
        print(f"wrote {path}")
    return table


# `scripts/semi_supervised_table.py`.
TABLE = Command(
    "semi_supervised_table.py",
    (TableArguments,),
    "hf_simclr.reports.command:semi_supervised_table",
    report="hf_simclr.reports.semi_supervised:format_semi_supervised_table",
)
