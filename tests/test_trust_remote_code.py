"""What the README says about `trust_remote_code` with hf_simclr installed, checked where a prompt would show:
a terminal. transformers asks `Do you wish to run the custom code? [y/N]` only when stdin is a terminal, and
waits for the answer (15 s), so each call runs in a subprocess whose stdin is a pseudo-terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import REMOTE_CODE_PROMPT as PROMPT
from builders import run_in_a_terminal, save_tiny_model


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
