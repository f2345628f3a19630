"""Sharing a model folder on the Hugging Face Hub: the repository id, the token and the folder are checked
before any network call, then everything goes up as one commit.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .arguments import UsageError
from .command import Command
from .conditions import Applies, setting_is
from .folder_format import (
    CONFIG_FILE,
    FOLDER_HOLDER_FILE,
    FOLDER_LOCK_FILE,
    IMAGE_PROCESSOR_FILE,
    MODEL_CARD_FILE,
    RESULTS_FILE,
    TRAINING_ARGS_FILE,
    WEIGHTS_FILES,
)
from .model_folder import CODE_FILES, DEFAULT_LICENSE, check_generated, load_encoder, load_simclr_config
from .paths import READ_DIR, check_path, check_repo_id
from .reports.card import render_model_card, save_model_card

if TYPE_CHECKING:
    from huggingface_hub import HfApi, ModelCard

    from .configuration_simclr import SimCLRConfig

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
    "abandoned/*",  # what a run set aside (an interrupted start, what followed an older checkpoint)
    ".tmp-*",
    ".replaced-*",
    ".*.tmp",
    FOLDER_LOCK_FILE,  # left behind only by a killed run: a folder is held while a run writes it
    FOLDER_HOLDER_FILE,
    "*__pycache__*",
]

_FILE_ORIGINS = {
    CONFIG_FILE: "pretraining (hf_simclr.model_folder.save_model_folder)",
    IMAGE_PROCESSOR_FILE: "pretraining (hf_simclr.model_folder.save_model_folder)",
    TRAINING_ARGS_FILE: "pretraining (hf_simclr.model_folder.save_model_folder with training_args)",
    RESULTS_FILE: "scripts/linear_probe.py",
    MODEL_CARD_FILE: "hf_simclr.reports.card.write_model_card (scripts/push_to_hub.py writes it unless --no_write_card)",
    **dict.fromkeys(CODE_FILES, "SimCLR save_pretrained (hf_simclr.model_folder.save_model_folder)"),
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
        UsageError: if the folder or a required file is missing (the message says which and what writes
            it), or it is not a SimCLR model, or its weights do not load into the encoder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; pass the model folder written by pretraining.")
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
        raise UsageError(f"{folder} is not ready to share, it lacks: {reasons}.")
    config = load_simclr_config(folder, flag="model_dir")
    load_encoder(folder, flag="model_dir")
    return config


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


OFFLINE_MESSAGE = (
    "the Hugging Face Hub is in offline mode (HF_HUB_OFFLINE is set), so nothing can be pushed: "
    "unset HF_HUB_OFFLINE (and HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE if set) on a machine that "
    "reaches huggingface.co, then push again."
)


def hub_token(token: str | None = None) -> str:
    """The token to push with: `token`, else `HF_TOKEN` or the one `hf auth login` stored.

    Raises:
        UsageError: in offline mode, or when no token is found (the message says how to get one).
    """
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE or _truthy(os.environ.get("HF_HUB_OFFLINE")):
        raise UsageError(OFFLINE_MESSAGE)
    token = token or get_token()
    if not token:
        raise UsageError(
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
        private (`bool`, defaults to False): a private repository: created private, or an existing public
            one made private before any file goes up ([`make_private`]). False leaves an existing
            repository's visibility as it is (a new one is public).
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
        UsageError: an invalid `repo_id`, offline mode or no token, a folder that is not ready (see
            [`check_model_folder`]), a repository asked to be private that cannot be made so (nothing is
            uploaded), and the Hub's refusals or an unreachable Hub (each named, with what to do).
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    check_repo_id(repo_id)
    token = hub_token(token)
    check_model_folder(folder, require_results=require_results, require_card=model_card is None)
    api = HfApi(token=token)
    with hub_errors(repo_id):
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if private:  # never the other way: not asking for private leaves a private repository private
        make_private(api, repo_id)
    with hub_errors(repo_id):
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


def make_private(api: HfApi, repo_id: str) -> None:
    """Make `repo_id` private before anything is uploaded to it.

    `create_repo(..., private=True, exist_ok=True)` leaves an existing repository's visibility as it is, so a
    push asked to be private would land in a public repository without a word. The repository is made
    private rather than the push refused: that is what was asked, it exposes nothing, and it is the same
    call for a repository just created (already private: no change) and for one that existed.

    Raises:
        UsageError: when the Hub does not make it private (no right to change its settings, unreachable, ...):
            the message names the repository and the fix; nothing has been uploaded.
    """
    try:
        with hub_errors(repo_id):
            api.update_repo_settings(repo_id, private=True, repo_type="model")
    except UsageError as error:
        raise UsageError(
            f"a private repository was asked for, but {repo_id} could not be made private, so nothing was "
            f"uploaded ({error}) Make it private at https://huggingface.co/{repo_id}/settings, or use a "
            f"token allowed to change its settings, then push again."
        ) from error.__cause__


def network_errors() -> tuple[type[BaseException], ...]:
    """The exceptions of an unreachable Hub: `OSError`, and the HTTP clients' own (huggingface_hub 1.x uses
    httpx, 2.x httpx2)."""
    errors: list[type[BaseException]] = [OSError]
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except ImportError:
            continue
    return tuple(errors)


@contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """The Hub's errors (offline, unreachable, refused) as a [`UsageError`] that names the repository and the fix.

    Raises:
        UsageError: in place of `OfflineModeIsEnabled`, a connection error or an HTTP error of the Hub.
    """
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled as error:
        raise UsageError(OFFLINE_MESSAGE) from error
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        advice = {
            401: "the token is not valid: run `hf auth login` again or set HF_TOKEN",
            403: f"the token may not write to {repo_id}: use a token with write access to that namespace",
            404: f"{repo_id} or its branch does not exist and could not be created: check the id and --revision",
        }.get(status, "check the repository id and the token, then push again")
        raise UsageError(f"the Hub refused the push to {repo_id} (HTTP {status}): {advice}.") from error
    except network_errors() as error:  # no network, DNS, timeouts
        raise UsageError(
            f"cannot reach the Hub to push to {repo_id} ({type(error).__name__}: {error}): check the network "
            f"(or a proxy), then push again; nothing was uploaded unless the commit went through."
        ) from error


@dataclass
class PushArguments:
    """Arguments of `scripts/push_to_hub.py` (and of [`push_to_hub`])."""

    model_dir: str = field(metadata={"help": "The model folder (pretrained, then probed)."})
    repo_id: str = field(metadata={"help": "Hub repository, 'user/name' or 'org/name'; created if missing."})
    private: bool = field(
        default=False,
        metadata={
            "help": "Make the repository private: created private, or an existing public one made private "
            "before the upload (without it, an existing repository's visibility is left as it is)."
        },
    )
    revision: str | None = field(
        default=None,
        metadata={"help": "Branch to commit to (created if missing); the PR's base with --create_pr."},
    )
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing."})
    commit_message: str = field(default="Upload SimCLR model (hf_simclr)", metadata={"help": "Commit title."})
    token: str | None = field(
        default=None, metadata={"help": "Hub token; defaults to HF_TOKEN or `hf auth login`."}
    )
    license: str = field(
        default=DEFAULT_LICENSE, metadata={"help": "Hub license id written into the card (the project's)."}
    )
    write_card: bool = field(
        default=True,
        metadata={
            "help": "Re-render README.md from results.json with the repo id; --no_write_card keeps yours."
        },
    )
    APPLIES: ClassVar[dict[str, Applies]] = {
        "license": Applies(
            setting_is("write_card", True, among=(True, False)),
            "the license is written into the card it renders",
        ),
    }

    def __post_init__(self) -> None:
        check_path("model_dir", self.model_dir, READ_DIR)
        check_repo_id(self.repo_id)


def push_to_hub(args: PushArguments) -> Any:
    """Share a probed model folder: its card rendered again for `args.repo_id` (unless `--no_write_card`),
    then [`push_model_folder`]; the card replaces the folder's `README.md` only once the upload starts.

    Returns:
        `huggingface_hub.CommitInfo` of the commit.

    Raises:
        UsageError: see [`push_model_folder`]; also, with the card to write, a `README.md` that hf_simclr did
            not write (it is kept: push it as it is with `--write_card false`).
    """
    if args.write_card:
        check_generated(Path(args.model_dir) / MODEL_CARD_FILE, "push it as it is with --write_card false")
    card = (
        render_model_card(args.model_dir, repo_id=args.repo_id, license=args.license)
        if args.write_card
        else None
    )
    commit = push_model_folder(
        args.model_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        create_pr=args.create_pr,
        token=args.token,
        commit_message=args.commit_message,
        model_card=card,
    )
    card_note = f"; {Path(args.model_dir) / MODEL_CARD_FILE} is the card rendered for it" if card else ""
    print(f"Pushed {args.model_dir} to {commit.pr_url or commit.commit_url}{card_note}.")
    return commit


_FOLDER = "give --model_dir (the model folder to push)"
# Flags of Trainer's Hub settings and of huggingface_hub's upload that people type here, with this script's way.
PUSH_ELSEWHERE_FLAGS = (
    ("hub_model_id", "give --repo_id user/name (or org/name)"),
    ("repo", "give --repo_id user/name (or org/name)"),
    ("repo_name", "give --repo_id user/name (or org/name)"),
    ("hub_private_repo", "give --private (an existing repository is made private too)"),
    ("hub_token", "give --token, or leave it out: HF_TOKEN or `hf auth login`"),
    ("hub_revision", "give --revision BRANCH"),
    ("branch", "give --revision BRANCH"),
    ("hub_strategy", "the whole folder goes up as one commit: leave it out"),
    ("push_to_hub", "push_to_hub.py always pushes: leave it out"),
    ("repo_type", "push_to_hub.py pushes a model repository: leave it out"),
    ("output_dir", _FOLDER),
    ("model_name_or_path", _FOLDER),
    ("folder_path", _FOLDER),
)
# `scripts/push_to_hub.py`.
PUSH = Command(
    "push_to_hub.py", (PushArguments,), "hf_simclr.hub:push_to_hub", known_elsewhere=PUSH_ELSEWHERE_FLAGS
)
