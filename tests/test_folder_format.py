"""folder_format: one atomic writer, every file name in one module, one weights check."""

import re
from pathlib import Path

import pytest

from hf_simclr.arguments import UsageError
from hf_simclr.folder_format import staged_folder, write_atomically, write_text_atomically
from hf_simclr.model_folder import check_loaded_weights

SRC = Path(__file__).resolve().parents[1] / "src" / "hf_simclr"


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = write_text_atomically(tmp_path / "results.json", "old\n")

    def half_write(temporary):
        temporary.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        write_atomically(target, half_write)
    assert target.read_text() == "old\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json"]


def test_a_write_replaces_the_file_whole(tmp_path):
    target = write_text_atomically(tmp_path / "a" / "b.json", "old")
    write_atomically(target, lambda temporary: temporary.write_text("new"))
    assert target.read_text() == "new" and [p.name for p in target.parent.iterdir()] == ["b.json"]


def test_a_failing_staged_folder_keeps_the_old_folder_and_no_staging(tmp_path):
    final = tmp_path / "step_3"
    with staged_folder(final) as staging:
        (staging / "model.safetensors").write_text("first")
    with pytest.raises(RuntimeError), staged_folder(final) as staging:
        (staging / "model.safetensors").write_text("half")
        raise RuntimeError
    assert (final / "model.safetensors").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["step_3"]


FILE_NAME = re.compile(r"""["'][^"'\s]+\.(json|jsonl|md|safetensors|bin|png|txt|yaml|lock|npy)["']""")


def test_no_file_name_literal_outside_folder_format():
    found = []
    for path in SRC.rglob("*.py"):
        if path.name == "folder_format.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if FILE_NAME.search(code) and '"""' not in code and "`" not in code:
                found.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not found, "file names belong in folder_format.py:\n" + "\n".join(found)


def test_the_weights_check_names_the_path_and_the_fix():
    info = {"missing_keys": ["simclr.backbone.conv1.weight", "classifier.weight"], "unexpected_keys": []}
    with pytest.raises(
        UsageError, match=r"--model_name_or_path /some/model: the weights lack 1 tensors .*Re-save"
    ):
        check_loaded_weights(
            info, "/some/model", "model_name_or_path", "Re-save.", allowed_missing=("classifier.",)
        )
    check_loaded_weights(
        {"missing_keys": ["classifier.bias"]}, "m", "f", "x", allowed_missing=("classifier.",)
    )
    with pytest.raises(UsageError, match="no place for"):
        check_loaded_weights({"unexpected_keys": ["head.w"]}, "/m", "model_dir", "Fix.")
