"""The README's "Writing your own loop" runs as written: the package's pieces work on tensors, outside the scripts."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_readmes_own_loop_runs_as_written(capsys):
    section = README.split("\n## Writing your own loop\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md: Writing your own loop", "exec"), {})
    assert re.match(r"loss \d\.\d{3}, linear top-1 [\d.]+, kNN@5 [\d.]+", capsys.readouterr().out)
