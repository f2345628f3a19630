"""The published runs in the repository's pages: numbers only from the runs' files (the blocks
`scripts/render_cards.py` writes; tests/test_model_cards.py checks the committed ones are a fresh render), and
what an older `results.json` lacks said from a comparison with today's probe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hf_simclr.arguments import UsageError
from hf_simclr.folder_format import RESULTS_FILE
from hf_simclr.reports.published import PROBE_FIELDS, block_markers, fields_note, replace_block, result_fields

REPO_ROOT = Path(__file__).resolve().parents[1]

# The numbers the pages' own text may hold, each an outside number it names or a plan's figure, not a run's:
EXTERNAL_NUMBERS = {
    "74.1",  # the reference single-file SimCLR's kNN top-1 (ecosystem notes)
    "78.1",  # its linear probe
    "6.7",  # its seconds per epoch
    "11.2",  # its minutes for 100 epochs
    "100",  # its epochs (the equal budget)
    "75",  # the JPEG quality of the copy (ecosystem notes)
    "9",  # the points that costs (ecosystem notes)
    "10",  # k of the reference's kNN; the quality-per-minute plan's 10 minutes
    "80",  # that plan's targets
    "83",
    "30",  # the GPU minutes of the session that made the run
}
NUMBER = re.compile(r"(?<![\w.=/-])\d+(?:\.\d+)?(?![\w-])")


def authors_text(page: str) -> str:
    """A page without its generated blocks, code blocks and inline code (commands, file and flag names)."""
    page = re.sub(
        r"<!-- hf_simclr block (.*?):.*?<!-- end of hf_simclr block \1 -->", "", page, flags=re.DOTALL
    )
    page = re.sub(r"```.*?```", "", page, flags=re.DOTALL)
    return re.sub(r"`[^`]*`", "", page)


@pytest.mark.parametrize("page", ["results/README.md", "README.md#Results and speed"])
def test_no_number_of_a_run_is_typed_by_hand_in_the_pages(page: str) -> None:
    # Before: the README and results/README.md typed 4.2 min (251 s) and 87 s, the card showed 234 s and 72 s.
    path, _, section = page.partition("#")
    text = (REPO_ROOT / path).read_text()
    if section:
        text = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    assert "<!-- hf_simclr block results/" in text  # the numbers are in the blocks
    typed = set(NUMBER.findall(authors_text(text))) - EXTERNAL_NUMBERS
    assert not typed, f"numbers typed in {page} outside its generated blocks: {sorted(typed)}"


def test_the_fields_named_are_those_todays_probe_writes(tiny_probe) -> None:
    _, results, _ = tiny_probe  # a run of today's probe, with --plots
    assert result_fields(results) == PROBE_FIELDS


def test_an_older_results_file_is_said_to_lack_and_keep_fields(tiny_probe, tmp_path: Path) -> None:
    _, results, _ = tiny_probe
    assert fields_note(tmp_path, results) is None  # today's results.json: nothing to say
    older = {key: value for key, value in results.items() if key not in ("timings_seconds", "linear_top3")}
    older["knn"] = results["knn_top1"]  # the former name, beside today's
    older["label_fraction"] = {
        fraction: {key: value for key, value in entry.items() if key != "linear_top3"}
        for fraction, entry in results["label_fraction"].items()
    }
    (tmp_path / RESULTS_FILE).write_text(json.dumps(older))
    note = " ".join(fields_note(tmp_path, older).split())
    assert "lacks `label_fraction.*.linear_top3`, `linear_top3`, `timings_seconds`, which today's" in note
    assert "keeps `knn` (the values of today's `knn_top1`)" in note
    assert "keeps no weights" in note and "nothing was filled in by hand" in note


def test_a_page_without_the_block_of_a_published_run_is_refused(tmp_path: Path) -> None:
    start, end = block_markers("results/run")
    page = tmp_path / "README.md"
    assert replace_block(f"# Results\n{start}\nold\n{end}\ntext\n", "results/run", "new\n", page) == (
        f"# Results\n{start}\nnew\n{end}\ntext\n"
    )
    with pytest.raises(UsageError, match=re.escape("has no block results/run: put these two lines")):
        replace_block("# Results\n", "results/run", "new", page)
