"""How the reports name what a run recorded: a dataset, a model, a folder, never by the machine's path.

A run records its arguments as they were given: `--dataset_name .data/cifar10`, `--output_dir /tmp/ref`,
`--model_name_or_path /home/someone/runs/simclr`. A card, a table or a footnote is read elsewhere, on the Hub
or in another checkout, where those paths mean nothing and tell who ran it where. Which recorded names are
local paths is decided by the package's one rule ([`hf_simclr.paths.local_path`]); a report shows such a
path by its last part only ([`local_name`]), marked as local ([`shown_value`]), and a dataset by the name its
dataset card gives it, with the Hub dataset it is a copy of when that is known ([`describe_dataset`]). A
command a report shows (the runner's "reproduce") is run from a folder, the repository's root: there a path
inside that folder is shown relative to it ([`shown_value`] with `root`), which reruns in any checkout and
names nothing of the machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..folder_format import MODEL_CARD_FILE
from ..paths import local_path

# What a local path is called when even its last part says nothing (".", "~", "./").
A_LOCAL_FOLDER = "a local folder"


def local_name(name: str | Path) -> str:
    """The last part of a local path as recorded (`/tmp/ref` -> `ref`), never expanded (`~` would give the
    user's name); [`A_LOCAL_FOLDER`] when that part is empty, `.`, `..` or `~`."""
    last = Path(str(name)).name
    return A_LOCAL_FOLDER if last in ("", ".", "..", "~") else last


def shown_value(value: Any, root: str | Path | None = None) -> Any:
    """A recorded value as a report shows it: every string that [`local_path`] takes for a local path becomes
    `"<last part> (local path)"`, inside dicts and lists too; anything else (Hub ids, numbers) is kept.

    With `root` (the folder a command shown in the report runs from), a local path inside it is shown
    relative to it instead (`/home/someone/repo/.data/cifar10` -> `.data/cifar10` for that repository), so
    the command still runs; one outside it is shown as above."""
    if isinstance(value, dict):
        return {key: shown_value(item, root) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [shown_value(item, root) for item in value]
    if isinstance(value, str) and value and local_path(value) is not None:
        inside = None if root is None else relative_inside(value, root)
        if inside is not None:
            return inside
        name = local_name(value)
        return name if name == A_LOCAL_FOLDER else f"{name} (local path)"
    return value


def relative_inside(name: str | Path, root: str | Path) -> str | None:
    """`name` relative to `root` when it lies inside it (`.` for `root` itself), else None. Symbolic links are
    not followed: a link inside `root` (`.data/cifar10` -> a shared disk) stays inside it, as written."""
    path = Path(os.path.abspath(Path(name).expanduser()))
    try:
        relative = path.relative_to(os.path.abspath(Path(root).expanduser()))
    except ValueError:
        return None
    return relative.as_posix() if relative.parts else "."


def describe_dataset(
    dataset_name: str | None,
    dataset_root: str | Path | None = None,
    source_datasets: dict[str, str] | None = None,
) -> dict[str, Any]:
    """How a dataset (Hub id or local folder) is named in a model card or a table.

    Args:
        dataset_name (`str`, *optional*): as recorded by the run (`--dataset_name`).
        dataset_root (`str` or `Path`, *optional*): where to look for a recorded local folder that does not
            exist here (a run made on another machine): `<dataset_root>/<folder name>`.
        source_datasets (`dict`, *optional*): `{folder name: Hub id}`: the Hub dataset a local copy was made
            from, where the copy's own dataset card does not say (its `source_datasets` metadata).

    Returns:
        `dict` with `id` (Hub id, or the local folder's name, for `model-index`), `name` (for prose), `hub`
        (whether `id` is a Hub dataset), `source` (the Hub dataset a local copy comes from, or None) and
        `notes` (limitations, e.g. a JPEG-recompressed copy, read from the local folder's dataset card).
    """
    if not dataset_name:
        return {"id": "unknown", "name": "an unrecorded dataset", "hub": False, "source": None, "notes": []}
    local = local_path(dataset_name)
    if local is None:
        return {"id": dataset_name, "name": f"`{dataset_name}`", "hub": True, "source": None, "notes": []}
    folder = local_name(dataset_name)
    if not local.is_dir() and dataset_root is not None:  # a folder of a run made on another machine
        local = Path(dataset_root) / local.name
    pretty, source, notes = f"`{folder}`", (source_datasets or {}).get(folder), []
    readme = local / MODEL_CARD_FILE
    if local.is_dir() and readme.is_file():
        from huggingface_hub import DatasetCard

        dataset_card = DatasetCard.load(readme)
        metadata = dataset_card.data.to_dict()
        pretty = metadata.get("pretty_name") or pretty
        source = _hub_source(metadata.get("source_datasets")) or source
        if "jpeg" in dataset_card.text.lower():
            copy = f"a local copy of `{source}`" if source else "a local copy"
            notes.append(
                f"{pretty} is {copy} whose images were re-encoded as JPEG, not the original lossless "
                f"files: accuracies on it run below those published on the originals, so compare them only "
                f"with runs on the same copy."
            )
    return {"id": folder, "name": pretty, "hub": False, "source": source, "notes": notes}


def _hub_source(source_datasets: list[str] | str | None) -> str | None:
    """The Hub dataset named by a dataset card's `source_datasets` (`extended|org/name` or `org/name`); None
    for `original`, `extended|other...` or none."""
    for entry in [source_datasets] if isinstance(source_datasets, str) else source_datasets or []:
        name = entry.split("|", 1)[1] if entry.startswith("extended|") else entry
        if name != "original" and not name.startswith("other"):
            return name
    return None
