"""Model card rendering and pushing a model folder to the Hub (network calls replaced, nothing sent)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.errors import OfflineModeIsEnabled
from huggingface_hub.utils import filter_repo_objects
from transformers import AutoModel

import hf_simclr
from hf_simclr import SimCLRModel, hub, model_folder
from hf_simclr.arguments import UsageError
from hf_simclr.reports import card as cards

REPO_ID = "someone/simclr-resnet18-tiny"


@pytest.fixture
def probed_folder(tiny_probe) -> Path:
    """A model folder after pretraining (tiny, random) and the probe: results.json and README.md (the shared
    run, `tiny_probe` in conftest.py; read only)."""
    return tiny_probe[2]


@pytest.fixture
def folder(probed_folder, tmp_path) -> Path:
    """A private copy of the probed folder, for tests that change it."""
    return Path(shutil.copytree(probed_folder, tmp_path / "model"))


class FakeHub:
    """The Hub as a push sees it: repositories with their visibility, branches and pull requests, each holding
    files. Its methods stand in for HfApi's network calls; what a push did is read from the state it leaves."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repos: dict[str, dict] = {}

    def create_repo(self, repo_id, private=False, exist_ok=False, repo_type="model", **kwargs):
        assert repo_type == "model" and (exist_ok or repo_id not in self.repos)
        self.repos.setdefault(
            repo_id, {"private": bool(private), "branches": {"main": {}}, "pull_requests": []}
        )
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id, branch, exist_ok=False, repo_type="model", **kwargs):
        branches = self.repos[repo_id]["branches"]  # KeyError, as the Hub's 404: the repository must exist
        assert exist_ok or branch not in branches
        branches.setdefault(branch, dict(branches["main"]))

    def update_repo_settings(self, repo_id, private=None, repo_type="model", **kwargs):
        assert repo_type == "model"
        if private is not None:
            self.repos[repo_id]["private"] = bool(private)  # KeyError, as the Hub's 404

    def upload_folder(
        self,
        repo_id,
        folder_path,
        revision=None,
        create_pr=False,
        commit_message=None,
        ignore_patterns=None,
        allow_patterns=None,
        repo_type="model",
        **kwargs,
    ):
        folder = Path(folder_path)
        names = [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()]
        kept = filter_repo_objects(names, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns)
        files = {name: (folder / name).read_bytes() for name in kept}  # one commit: all files, or none
        repo = self.repos[repo_id]
        branch = revision or "main"
        assert branch in repo["branches"], f"revision {branch} not found"  # the Hub refuses it too
        if create_pr:
            repo["pull_requests"].append({"target": branch, "files": files, "message": commit_message})
        else:
            repo["branches"][branch] = {**repo["branches"][branch], **files}
        return huggingface_hub.CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/abc",
            commit_message=commit_message,
            commit_description="",
            oid="abc",
        )

    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        return self.repos[repo_id]["branches"][branch]

    def checkout(self, files: dict[str, bytes], name: str) -> Path:
        """The files as a local folder, as a download of them would be."""
        folder = self.root / name
        for relative, content in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(content)
        return folder


@pytest.fixture
def fake_hub(monkeypatch, online_hub, tmp_path) -> FakeHub:
    """A [`FakeHub`] in place of HfApi's network calls; a token is set and offline mode is off."""
    fake = FakeHub(tmp_path / "hub")
    for name in ("create_repo", "create_branch", "update_repo_settings", "upload_folder"):
        monkeypatch.setattr(huggingface_hub.HfApi, name, getattr(fake, name))
    return fake


# ----------------------------------------------------------------------------------------------
# Model card
# ----------------------------------------------------------------------------------------------


def test_card_renders_parses_and_repeats_the_results(folder):
    results = json.loads((folder / "results.json").read_text())
    path = cards.write_model_card(folder, repo_id=REPO_ID)
    card = ModelCard.load(path)
    by_name = {result.metric_name: result for result in card.data.eval_results}
    assert by_name["Linear probe top-1"].metric_value == results["linear_top1"]
    assert by_name["Linear probe top-5"].metric_value == results["linear_top5"]
    assert by_name["kNN top-1 (k=3)"].metric_value == results["knn_top1"]["3"]
    assert by_name["kNN top-1 (k=200)"].metric_value == results["knn_top1"]["200"]
    assert (
        by_name["Linear probe top-1 (50% labels)"].metric_value
        == results["label_fraction"]["0.5"]["linear_top1"]
    )
    first = card.data.eval_results[0]
    assert (first.task_type, first.metric_type, first.dataset_split) == (
        "image-classification",
        "accuracy",
        "test",
    )
    assert "model-index" in card.content and card.data.pipeline_tag == "image-feature-extraction"
    # The table shows the same numbers in percent: 100 x the stored 4-digit fractions.
    baseline = results["random_init_baseline"]
    assert (
        f"| Linear probe top-1 | {100 * results['linear_top1']:.2f} | {100 * baseline['linear_top1']:.2f} |"
        in card.text
    )
    assert f"| kNN top-1 (k=200) | {100 * results['knn_top1']['200']:.2f} |" in card.text
    assert f"{100 * results['label_fraction']['0.5']['linear_top1']:.2f}" in card.text
    z = results["z"]  # the projection head's output, beside h; the model-index keeps h only
    assert (
        f"| Linear probe top-1 on z = g(h), the projection head's output | {100 * z['linear_top1']:.2f} |"
        in card.text
    )
    assert f"| kNN top-1 (k=3) on z | {100 * z['knn_top1']['3']:.2f} |" in card.text
    assert not any("on z" in name for name in by_name)
    assert f'AutoModel.from_pretrained("{REPO_ID}", trust_remote_code=True)' in card.text
    assert f'pipeline("image-feature-extraction", model="{REPO_ID}", trust_remote_code=True)' in card.text
    assert "resnet18" in card.text and "CIFAR stem" in card.text and "2002.05709" in card.text
    assert "| `epochs` | 1 |" in card.text  # the recipe, from training_args.json


def test_card_usage_gives_h_from_the_pipeline(folder):
    # Before: the card's pipeline line returned the (1, 512, 4, 4) feature map, not h.
    card = cards.render_model_card(folder, repo_id=REPO_ID)
    assert 'extractor("image.jpg", pool=True)' in card.text


def test_card_names_the_jpeg_copy_of_cifar10(cifar10_path):
    described = cards.describe_dataset(str(cifar10_path))
    assert described["id"] == "cifar10" and described["name"] == "CIFAR-10 (JPEG)" and not described["hub"]
    assert any("re-encoded as JPEG" in note for note in described["notes"])
    assert cards.describe_dataset("uoft-cs/cifar10") == {
        "id": "uoft-cs/cifar10",
        "name": "`uoft-cs/cifar10`",
        "hub": True,
        "source": None,
        "notes": [],
    }


def test_card_template_ships_inside_the_package():
    # A non-editable install (`pip install .`) holds only the package, so the template must be package
    # data; .ci/run also renders a card from such an install.
    tomllib = pytest.importorskip("tomllib")
    assert cards.MODEL_CARD_TEMPLATE.parent == Path(cards.__file__).resolve().parent
    assert cards.MODEL_CARD_TEMPLATE.is_file()
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    packaged = cards.MODEL_CARD_TEMPLATE.relative_to(Path(hf_simclr.__file__).resolve().parent).as_posix()
    assert packaged in pyproject["tool"]["setuptools"]["package-data"]["hf_simclr"]


def test_card_needs_results(folder):
    (folder / "results.json").unlink()
    with pytest.raises(UsageError, match="run `python scripts/linear_probe.py"):
        cards.render_model_card(folder)


# ----------------------------------------------------------------------------------------------
# Pushing
# ----------------------------------------------------------------------------------------------


def test_push_uploads_a_complete_loadable_folder_in_one_commit(folder, fake_hub):
    (folder / "feature_cache" / "features_model_train.safetensors").touch()
    commit = hub.push_model_folder(folder, REPO_ID, private=True, commit_message="first model")
    assert fake_hub.repos[REPO_ID]["private"] is True and commit.commit_url.endswith("/commit/abc")
    files = fake_hub.files(REPO_ID)
    for name in hub.REQUIRED_FILES + ("model.safetensors",):
        assert name in files, name
    assert not any(name.startswith(("feature_cache/", "checkpoints/")) for name in files)
    uploaded = fake_hub.checkout(files, "main")
    encoder = AutoModel.from_pretrained(uploaded)
    assert isinstance(encoder, SimCLRModel)
    remote = AutoModel.from_pretrained(uploaded, trust_remote_code=True)
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert remote.eval()(pixel_values).pooler_output.shape == (2, 512)


def test_push_to_a_branch_or_as_a_pull_request(folder, fake_hub):
    hub.push_model_folder(folder, REPO_ID, revision="v1")
    branches = fake_hub.repos[REPO_ID]["branches"]
    assert set(branches) == {"main", "v1"} and branches["main"] == {} and "config.json" in branches["v1"]
    hub.push_model_folder(folder, REPO_ID, create_pr=True, commit_message="a proposal")
    (proposal,) = fake_hub.repos[REPO_ID]["pull_requests"]
    assert proposal["target"] == "main" and "config.json" in proposal["files"] and branches["main"] == {}


def test_push_checks_the_folder_before_any_network_call(folder, fake_hub):
    (folder / "results.json").unlink()
    (folder / "loss.py").unlink()
    with pytest.raises(
        UsageError, match=r"lacks: loss.py .*; results.json \(written by scripts/linear_probe.py\)"
    ):
        hub.push_model_folder(folder, REPO_ID)
    assert fake_hub.repos == {}


def test_push_refuses_a_folder_that_is_not_a_simclr_model(folder, fake_hub):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "resnet"}))
    with pytest.raises(ValueError, match="holds a 'resnet' model"):
        hub.push_model_folder(folder, REPO_ID)
    assert fake_hub.repos == {}


def test_push_offline_says_what_to_do(folder, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError, match="unset HF_HUB_OFFLINE"):
        hub.push_model_folder(folder, REPO_ID)
    assert fake_hub.repos == {}
    # Offline mode switched on after import shows up as huggingface_hub's own error: translated too.
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def offline(self, repo_id, **kwargs):
        raise OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled.")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", offline)
    with pytest.raises(UsageError, match="unset HF_HUB_OFFLINE") as error:
        hub.push_model_folder(folder, REPO_ID)
    assert isinstance(error.value.__cause__, OfflineModeIsEnabled)


def test_push_without_a_token_says_how_to_log_in(folder, fake_hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(UsageError, match=r"run `hf auth login`, or set HF_TOKEN"):
        hub.push_model_folder(folder, REPO_ID)
    assert fake_hub.repos == {}


def test_push_script_rewrites_the_card_with_the_repo_id(folder, fake_hub, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    import push_to_hub

    monkeypatch.setattr(sys, "argv", ["push_to_hub.py", "--model_dir", str(folder), "--repo_id", REPO_ID])
    push_to_hub.main()
    assert f'AutoModel.from_pretrained("{REPO_ID}"' in (folder / "README.md").read_text()
    assert fake_hub.files(REPO_ID)["README.md"] == (folder / "README.md").read_bytes()  # the rewritten card
    assert "Pushed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "problem, match",
    [
        ("offline", "unset HF_HUB_OFFLINE"),
        ("no token", "run `hf auth login`"),
        ("invalid repo id", "--repo_id 'someone/not valid' is not a Hub repository id"),
    ],
)
def test_push_script_changes_nothing_when_the_push_cannot_start(
    folder, fake_hub, monkeypatch, capsys, problem, match
):
    # Before: the script rewrote README.md for the new repo id, then failed to upload (or, with an
    # invalid id, went on to the network).
    repo_id = "someone/not valid" if problem == "invalid repo id" else "someone/another-name"
    if problem == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if problem == "no token":
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    import push_to_hub

    monkeypatch.setattr(sys, "argv", ["push_to_hub.py", "--model_dir", str(folder), "--repo_id", repo_id])
    with pytest.raises(SystemExit) as exit:  # the usage and the message, no traceback
        push_to_hub.main()
    assert exit.value.code == 2 and match in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()} == before
    assert fake_hub.repos == {}


# ----------------------------------------------------------------------------------------------
# Reading folders back
# ----------------------------------------------------------------------------------------------


def test_eval_view_comes_from_the_saved_image_processor(probed_folder, tmp_path):
    view = model_folder.eval_augmentation_for(probed_folder)
    assert view.image_size == 32 and view.mean == (0.4914, 0.4822, 0.4465)
    bare = Path(
        shutil.copytree(probed_folder, tmp_path / "bare", ignore=shutil.ignore_patterns("feature_cache"))
    )
    (bare / "preprocessor_config.json").unlink()
    with pytest.warns(UserWarning, match="no usable preprocessor_config.json"):
        assert model_folder.eval_augmentation_for(bare).image_size == 32  # the config's image_size


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no config.json found"):
        model_folder.load_encoder(tmp_path / "does-not-exist")


@pytest.mark.slow  # a script or Python run in a subprocess
def test_the_hub_tests_pass_with_the_offline_variables_set_too(tmp_path):
    # Before: with HF_HUB_OFFLINE=1 in the environment (as the package advises on a machine without the Hub),
    # a push test failed: it cleared the variable but not huggingface_hub's constant read at import.
    offline = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    tests = Path(__file__).resolve().parent
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(tests / "test_hub.py"),
            str(tests / "test_failures.py"),
            "-k",
            "not offline_variables and (test_hub or push)",
        ],
        capture_output=True,
        text=True,
        env=offline,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]


# ----------------------------------------------------------------------------------------------
# Visibility of a repository that already exists
# ----------------------------------------------------------------------------------------------


def test_push_private_makes_an_existing_public_repository_private_before_the_upload(
    folder, fake_hub, monkeypatch
):
    # Before: create_repo(private=True, exist_ok=True) left the existing public repository public.
    fake_hub.create_repo(REPO_ID, private=False)
    visibility_at_upload = []

    def upload_seeing_the_visibility(self, **kwargs):
        visibility_at_upload.append(fake_hub.repos[kwargs["repo_id"]]["private"])
        return fake_hub.upload_folder(**kwargs)

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_seeing_the_visibility)
    hub.push_model_folder(folder, REPO_ID, private=True)
    assert visibility_at_upload == [True] and fake_hub.repos[REPO_ID]["private"] is True
    assert "config.json" in fake_hub.files(REPO_ID)


def test_push_without_private_leaves_an_existing_private_repository_private(folder, fake_hub):
    fake_hub.create_repo(REPO_ID, private=True)
    hub.push_model_folder(folder, REPO_ID)
    assert fake_hub.repos[REPO_ID]["private"] is True and "config.json" in fake_hub.files(REPO_ID)


def test_push_private_uploads_nothing_when_the_repository_cannot_be_made_private(
    folder, fake_hub, monkeypatch
):
    from huggingface_hub.errors import HfHubHTTPError

    fake_hub.create_repo(REPO_ID, private=False)

    def refused(self, repo_id, **kwargs):
        response = type("Response", (), {"status_code": 403, "headers": {}, "request": None})()
        raise HfHubHTTPError("403 Forbidden: not allowed to change the settings", response=response)

    monkeypatch.setattr(huggingface_hub.HfApi, "update_repo_settings", refused)
    with pytest.raises(UsageError) as error:
        hub.push_model_folder(folder, REPO_ID, private=True)
    message = str(error.value)
    assert f"{REPO_ID} could not be made private, so nothing was uploaded" in message
    assert f"Make it private at https://huggingface.co/{REPO_ID}/settings" in message
    assert fake_hub.repos[REPO_ID]["private"] is False and fake_hub.files(REPO_ID) == {}


def test_pretraining_push_with_hub_private_repo_makes_an_existing_public_repository_private(
    fake_hub, tmp_path
):
    # pretrain.py --push_to_hub --hub_private_repo goes through push_model_folder too.
    from builders import save_tiny_dataset, tiny_pretraining

    fake_hub.create_repo(REPO_ID, private=False)
    data = save_tiny_dataset(tmp_path / "data")
    tiny_pretraining(
        tmp_path / "run", data, max_steps=1, push_to_hub=True, hub_model_id=REPO_ID, hub_private_repo=True
    )
    assert fake_hub.repos[REPO_ID]["private"] is True and "config.json" in fake_hub.files(REPO_ID)
