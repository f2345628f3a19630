"""The house stays readable: short functions, modules of one idea, thin scripts (docs/architecture.md).

The floors themselves (who may import whom) are the import-linter contracts in pyproject.toml, checked by
`lint-imports` in .ci/run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO_ROOT / "src" / "hf_simclr").rglob("*.py"))
SCRIPTS = sorted((REPO_ROOT / "scripts").glob("*.py"))
FUNCTION_LINES = 60  # lines of code a function may hold, docstring and blank lines aside
MODULE_LINES = 550  # about 500: above that a module holds several ideas (gpu_transforms.py, one idea, is 517)


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> int:
    """Non-blank lines of a function outside its docstring."""
    docstring = set()
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        docstring = set(range(first.lineno, first.end_lineno + 1))
    span = range(node.lineno, node.end_lineno + 1)
    return sum(1 for number in span if number not in docstring and lines[number - 1].strip())


def functions(path: Path) -> list[tuple[str, int]]:
    source = path.read_text()
    lines = source.splitlines()
    return [
        (f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name}", code_lines(node, lines))
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def test_no_function_in_the_package_is_longer_than_a_screen():
    long = [
        f"{name}: {count} lines"
        for path in SOURCES
        for name, count in functions(path)
        if count > FUNCTION_LINES
    ]
    assert not long, f"split these into named steps (at most {FUNCTION_LINES} lines of code each): {long}"


def test_no_module_holds_several_ideas():
    large = [f"{path.relative_to(REPO_ROOT)}: {len(path.read_text().splitlines())}" for path in SOURCES]
    large = [entry for entry in large if int(entry.rsplit(" ", 1)[1]) > MODULE_LINES]
    assert not large, f"split by idea (docs/architecture.md): {large}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_parse_and_call_one_library_function(script: Path):
    tree = ast.parse(script.read_text())
    defined = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert defined == ["main"], (
        f"{script.name}: the logic belongs in hf_simclr, the script only parses and calls"
    )
    (main,) = (node for node in tree.body if isinstance(node, ast.FunctionDef))
    assert code_lines(main, script.read_text().splitlines()) <= 12


def test_no_import_cycle_between_any_two_modules():
    # lint-imports holds the floors between folders and inside each (pyproject.toml); this is the same promise
    # said of single modules, read by grimp (which import-linter uses): no strongly connected set of modules.
    import grimp

    graph = grimp.build_graph("hf_simclr")
    modules = sorted(graph.modules)
    cycles = [
        (module, other)
        for module in modules
        for other in graph.find_modules_directly_imported_by(module)
        if other != module and graph.chain_exists(importer=other, imported=module)
    ]
    assert not cycles, f"import cycles (break them by moving the code to its floor): {cycles[:5]}"
