"""Every command the documentation gives (Markdown files, the card template, the configs' comments) parses
with its script's own parser, as written.

What is taken: each `python scripts/NAME.py ...`, `accelerate launch ... scripts/NAME.py ...` and
`torchrun ... scripts/NAME.py ...` in a fenced code block, an inline code span (which may run over several
lines) or a comment line of `configs/*.yaml` / `configs/grids/*`; a line ending in `\\` continues on the
next. Only the script's own arguments are parsed (what follows `scripts/NAME.py`), not the launcher's.

Rules for what a reader fills in (the test does the same):
- a `<placeholder>` or a shell variable (`$init`, `${run%:*}`) is replaced by a real value from
  `PLACEHOLDERS` below; one the table does not know fails the test (add it, with a value a reader would give);
- `...` (the rest of the settings, left out) and a `# comment` are dropped; `a|b` (one of two) is `a`;
  `[--flag]` (an optional flag) is parsed with the flag;
- a path the command reads is not required to exist (the user's data, a run folder an earlier command
  writes), except the repository's own files: an argument naming `configs/...` must name a file of the repo;
  a `runs/...` folder (what the quick start writes) is made, empty, for the parse, so that it reads as a
  folder and not as a Hub id.

The parse is the script's `Command.parse` (the checks `--help` and a mistake run before any heavy import),
so a flag the script does not take, a wrong value, or `--bf16` on a machine without GPU fails here.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from hf_simclr.command import Command

REPO_ROOT = Path(__file__).resolve().parents[1]

PLACEHOLDERS = {
    "<cifar10 copy>": "../shared/datasets/cifar10",
    "<folder>": "runs/simclr-cifar10-resnet18",
    "$init": "simclr",
    "${run%:*}": "0.01",
    "${run#*:}": "60",
    "$OUT": "outputs",
    "$A": "--model_name_or_path /tmp/evalbench/model --dataset_name ../shared/datasets/cifar10"
    " --max_train_samples 5000 --max_eval_samples 1000 --device cpu",  # docs/benchmarks.md defines A so
}
SCRIPT = re.compile(r"(?:python3? |accelerate launch |torchrun )[^`\n]*?scripts/(\w+)\.py")


def documents() -> list[Path]:
    """The Markdown files of the repository and the configs (whose comments give commands)."""
    markdown = [
        path
        for path in REPO_ROOT.rglob("*.md")
        if not any(
            part.startswith(".") or part in ("node_modules",) for part in path.relative_to(REPO_ROOT).parts
        )
    ]
    configs = [*REPO_ROOT.glob("configs/*.yaml"), *REPO_ROOT.glob("configs/grids/*")]
    return sorted(markdown + configs)


def passages(path: Path) -> list[str]:
    """The pieces of `path` that can hold a command: code blocks' lines, inline code spans, comment lines."""
    text = path.read_text()
    if path.suffix != ".md":
        lines = [line.lstrip()[1:].strip() for line in text.splitlines() if line.lstrip().startswith("#")]
        return joined(lines)
    pieces: list[str] = []
    blocks = re.split(r"^```.*$", text, flags=re.MULTILINE)
    for index, block in enumerate(blocks):
        if index % 2:  # inside a fence
            pieces += joined(block.splitlines())
        else:
            pieces += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", block)]
    return pieces


def joined(lines: list[str]) -> list[str]:
    """Lines with their `\\` continuations joined."""
    out: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
        else:
            out.append(pending + line)
            pending = ""
    return out + ([pending] if pending else [])


def commands() -> list[tuple[str, str, str]]:
    """`(where, script name, argument text)` of every documented command."""
    found = []
    for path in documents():
        for piece in passages(path):
            for match in SCRIPT.finditer(piece):
                rest = piece[match.end() :]
                following = SCRIPT.search(rest)
                rest = rest[: following.start()] if following else rest
                rest = re.split(r"\s#|;|\s&&\s|\)$", rest)[0]
                found.append((str(path.relative_to(REPO_ROOT)), match.group(1), rest.strip()))
    return found


def argv_of(text: str) -> list[str]:
    """The argument list a reader would type: placeholders filled, `...` dropped, `a|b` as `a`."""
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    unknown = re.findall(r"<[^>]+>|\$\{?\w[^\s]*", text)
    assert not unknown, (
        f"placeholders {unknown} are not in PLACEHOLDERS: add each with a value a reader would give"
    )
    return [item.split("|")[0].strip("[]") for item in shlex.split(text) if item != "..."]


def script_command(name: str) -> Command:
    """The `Command` object that `scripts/<name>.py` runs."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (command,) = {id(value): value for value in vars(module).values() if isinstance(value, Command)}.values()
    return command


DOCUMENTED = commands()


def test_the_documentation_gives_commands_of_every_kind():
    scripts = {name for _, name, _ in DOCUMENTED}
    assert {"pretrain", "linear_probe", "finetune", "run_experiments", "snapshot_curve"} <= scripts
    assert any(where.startswith("configs/") for where, _, _ in DOCUMENTED)
    assert any(where.startswith("results/") for where, _, _ in DOCUMENTED)


@pytest.mark.parametrize(("where", "script", "text"), DOCUMENTED, ids=[f"{w}:{s}" for w, s, _ in DOCUMENTED])
def test_a_documented_command_parses(where, script, text, tmp_path, monkeypatch, capsys):
    arguments_module = importlib.import_module("hf_simclr.paths")  # today's (a test may re-import it)
    original = arguments_module.check_path
    reads = (arguments_module.READ_DIR, arguments_module.READ_FILE, arguments_module.READ_DIR_OR_FILE)
    reads += (arguments_module.READ_DIR_OR_HUB,)

    def check_path(flag, value, role):  # what an earlier command writes, or the user's data, may be absent
        if role in reads and value is not None and not Path(value).expanduser().exists():
            return
        original(flag, value, role)

    for module in ("hf_simclr.paths", "hf_simclr.pretraining.arguments", "hf_simclr.timm_export"):
        monkeypatch.setattr(f"{module}.check_path", check_path)
    monkeypatch.chdir(tmp_path)
    for entry in REPO_ROOT.iterdir():  # the repository root, as the docs run from it, with a runs/ of its own
        if not entry.name.startswith(".") and entry.name != "runs":
            (tmp_path / entry.name).symlink_to(entry)
    argv = argv_of(text)
    for item in argv:
        if item.startswith("configs/"):
            assert (REPO_ROOT / item).is_file(), f"{where}: `{script}.py` names {item}, which the repo lacks"
        if item.startswith("runs/") and "*" not in item:
            (tmp_path / item).mkdir(parents=True, exist_ok=True)
    try:
        script_command(script).parse(argv)
    except SystemExit as exit:
        if exit.code != 0 or "--help" not in argv and "-h" not in argv:
            pytest.fail(
                f"{where}: `python scripts/{script}.py {text}` exits {exit.code}: {capsys.readouterr().err}"
            )
