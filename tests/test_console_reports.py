"""What the scripts print at the end: where they wrote, each file named."""

from __future__ import annotations

import re
from pathlib import Path

from hf_simclr.reports.tables import format_probe_report


def test_the_probe_says_which_files_it_wrote_and_where(tiny_probe):
    # Before: the table only; the reader had to look for results.json, the plots and the card.
    _, results, model_dir = tiny_probe
    report = format_probe_report(results)
    assert f"Wrote into {model_dir}/:" in report
    named = re.findall(r"^  (\S+)", report.split("Wrote into", 1)[1], flags=re.MULTILINE)
    assert {"results.json", "README.md", "feature_cache/"} <= set(named)
    assert set(results["plots"].values()) <= set(named)
    for name in named:
        assert (Path(model_dir) / name).exists(), name
