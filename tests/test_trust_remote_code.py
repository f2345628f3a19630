"""What the README says about `trust_remote_code` with hf_simclr installed, checked where a prompt would show:
a terminal. transformers asks `Do you wish to run the custom code? [y/N]` only when stdin is a terminal, and
waits for the answer (15 s), so each call runs in a subprocess whose stdin is a pseudo-terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from builders import save_tiny_model

PROMPT = "Do you wish to run the custom code"


def run_in_a_terminal(code: str, cwd: Path) -> tuple[str, float]:
    """`code` run by python with a pseudo-terminal as stdin (nothing is ever typed): its output, its seconds."""
    controller, terminal = os.openpty()
    started = time.perf_counter()
    try:
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=cwd,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr, time.perf_counter() - started


@pytest.mark.slow
def test_with_hf_simclr_installed_the_readmes_calls_ask_nothing(tmp_path: Path) -> None:
    # Before: pipeline(...) without trust_remote_code asked for a SimCLRVideoProcessor transformers
    # inferred from the image processor's auto_map, waited 15 s, and went on whatever the answer.
    save_tiny_model(tmp_path / "model")
    output, seconds = run_in_a_terminal(
        """
        import hf_simclr
        from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

        AutoModel.from_pretrained("model")
        AutoImageProcessor.from_pretrained("model")
        AutoModelForImageClassification.from_pretrained("model", id2label={0: "a", 1: "b", 2: "c"})
        extractor = pipeline("image-feature-extraction", model="model", trust_remote_code=True)
        assert type(extractor.model).__module__ == "hf_simclr.modeling_simclr"
        print("done")
        """,
        tmp_path,
    )
    assert "done" in output and PROMPT not in output
    assert seconds < 60  # no 15 s wait for an answer (the imports and three loads take ~10 s on 2 cores)
