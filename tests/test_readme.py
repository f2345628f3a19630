"""What the README promises a newcomer beyond its code (whose usage snippet runs in test_loading.py)."""

from __future__ import annotations

from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def section(title: str) -> str:
    """The text of the README's `## title` section."""
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_failure_modes_say_what_is_written_safe_to_interrupt_resumed_and_refused() -> None:
    failure_modes = section("Failure modes")
    for promise in (
        "checkpoints/.tmp-step_N/",
        "Safe to interrupt",
        "--resume_from_checkpoint latest",
        "--overwrite_output_dir",
        "resume_settings.json",
        "Refused before any work",
        "exit code 2",
        "run the same command again",
        "<!-- Written by",
        "SIGTERM",
        "143",
        "--resume_from_checkpoint latest",
        ".hf_simclr.lock",
        "no space left on device",
        "newest complete one",
    ):
        assert promise in failure_modes, promise
