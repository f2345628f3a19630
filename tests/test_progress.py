"""Progress: tqdm's bar on a terminal, lines in a redirected log, for every bar of the package (`hf_simclr.progress`)."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap

import numpy as np
import pytest
import torch

from hf_simclr.progress import ProgressLines, progress_bar

# What a bar redrawn in place writes: a carriage return, and cursor movements for a bar under another.
REDRAWS = ("\r", "\x1b[")


def assert_only_lines(text: str) -> None:
    assert not any(control in text for control in REDRAWS), repr(text[-500:])


def test_redirected_a_phase_writes_a_line_when_it_starts_and_when_it_ends_not_per_update(capfd):
    # Before: each update was a `\r` redraw in the file; 1000 updates, one endless line.
    with progress_bar(desc="decoding", total=1000, unit="img") as bar:
        for _ in range(1000):
            bar.update()
    err = capfd.readouterr().err
    assert_only_lines(err)
    start, end = err.splitlines()
    assert start.startswith("decoding:   0% 0/1000 [00:00<?") and start.endswith("?img/s]")
    assert end.startswith("decoding: 100% 1000/1000 [")


def test_redirected_a_long_phase_writes_a_line_at_most_every_interval_and_its_records_at_once(capfd):
    lines = ProgressLines(desc="pretraining", total=4, unit="step", interval=3600)
    lines.update(2)  # within the interval: no line
    lines.set_postfix(loss="2.7668", lr="0.00937")  # a log record: a line at once
    often = ProgressLines(desc="fits", total=2, unit="fit", interval=0)
    often.update()  # the interval has passed: a line
    lines.update(2)
    often.update()  # a line: 2/2
    for phase in (often, lines, often, lines):
        phase.close()  # the end: a line each, once, and none when the last line said it (often's 2/2)
    written = capfd.readouterr().err.splitlines()
    assert [line.split(" [")[0] for line in written] == [
        "pretraining:   0% 0/4",
        "pretraining:  50% 2/4",
        "fits:   0% 0/2",
        "fits:  50% 1/2",
        "fits: 100% 2/2",
        "pretraining: 100% 4/4",
    ]
    assert written[1].endswith("step/s, loss=2.7668, lr=0.00937]") and written[-1].endswith("lr=0.00937]")


def extract_tiny_features() -> None:
    from hf_simclr import SimCLRConfig, SimCLRModel
    from hf_simclr.augmentation import augmentation_preset
    from hf_simclr.evaluation.features import extract_features

    encoder = SimCLRModel(SimCLRConfig(backbone="resnet18", cifar_stem=True, image_size=32))
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    extract_features(
        encoder, images, augmentation_preset("cifar10"), "cpu", batch_size=2, progress="features"
    )


def fit_tiny_probe() -> None:
    from hf_simclr.evaluation.linear import fit_linear_probe

    h, y = torch.randn(30, 4, generator=torch.Generator().manual_seed(0)), torch.arange(30) % 3
    fit_linear_probe(h, y, 3, weight_decays=[1e-4, 1e-2], max_iter=3, progress="linear probe on h")


def decode_tiny_split() -> None:
    from hf_simclr.decoded_cache import fill_rows

    def fill_chunk(out: np.ndarray, start: int, stop: int) -> int:
        out[start:stop] = 1
        return stop - start

    fill_rows(fill_chunk, np.zeros((10, 3), np.uint8), range(10), 1, 4, "Decoding 10 images")


@pytest.mark.parametrize(
    "phase, desc",
    [
        (extract_tiny_features, "features"),
        (fit_tiny_probe, "linear probe on h"),
        (decode_tiny_split, "Decoding 10 images (1 worker(s))"),
    ],
    ids=["feature extraction", "linear probe fits", "decoding"],
)
def test_the_package_s_bars_write_lines_to_a_redirected_log(capfd, phase, desc):
    # Before: each of them wrote its `\r` redraws into the log (decoding drew nothing at all off a terminal).
    phase()
    err = capfd.readouterr().err
    assert_only_lines(err)
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{desc}: ") for line in lines), lines
    assert " 0% 0/" in lines[0] and "100% " in lines[1]


def test_a_redirected_pretraining_log_holds_its_records_as_lines(tmp_path, capfd):
    # Before: the loop's bar and its postfix (the log record) were `\r` redraws, one line for the whole run.
    from builders import save_tiny_dataset, tiny_pretraining

    data = save_tiny_dataset(tmp_path / "data")
    capfd.readouterr()  # datasets' own bar, saving the data
    tiny_pretraining(tmp_path / "run", data, max_steps=2)
    out, err = capfd.readouterr()
    assert_only_lines(out + err)
    records = [line for line in err.splitlines() if line.startswith("pretraining: ")]
    assert records[0].startswith("pretraining:   0% 0/2 [")
    assert [" 50% 1/2 [" in records[1], "100% 2/2 [" in records[2]] == [True, True], records
    assert all("loss=" in line and "img_s=" in line for line in records[1:]) and len(records) == 3


class TerminalText(io.StringIO):
    """stderr as a terminal answers: `isatty()` True (the text is kept, to be read)."""

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_pretraining_draws_its_bar(tmp_path, monkeypatch):
    from builders import save_tiny_dataset, tiny_pretraining

    data = save_tiny_dataset(tmp_path / "data")
    terminal = TerminalText()
    monkeypatch.setattr(sys, "stderr", terminal)
    tiny_pretraining(tmp_path / "run", data, max_steps=1)
    drawn = terminal.getvalue()
    assert re.search(r"\rpretraining: 100%\|[^\n]*, loss=", drawn), (
        drawn
    )  # redrawn in place, the record beside


@pytest.mark.slow  # Python in a subprocess
def test_on_a_pseudo_terminal_the_bar_draws_and_redirected_it_writes_lines(tmp_path):
    # The boundary itself: stderr a real terminal (os.openpty) or a file, in a process of its own.
    code = textwrap.dedent(
        """
        import time
        from hf_simclr.progress import progress_bar

        for _ in progress_bar(range(5), desc="phase", unit="it"):
            time.sleep(0.05)
        """
    )
    controller, terminal = os.openpty()
    # 24 rows of 100 columns: tqdm draws nothing on a terminal 0 columns wide
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        child = subprocess.Popen([sys.executable, "-c", code], stderr=terminal, cwd=tmp_path)
        os.close(terminal)
        drawn = read_until_closed(controller, child)
    finally:
        os.close(controller)
    assert child.returncode == 0, drawn
    assert len(re.findall(r"\rphase: +\d+%\|.*?it/s\]", drawn)) >= 2, drawn  # tqdm's bar, redrawn in place
    with (tmp_path / "log.txt").open("w") as log:
        subprocess.run([sys.executable, "-c", code], stderr=log, cwd=tmp_path, check=True, timeout=120)
    written = (tmp_path / "log.txt").read_text()
    assert_only_lines(written)
    assert [line.split(" [")[0] for line in written.splitlines()] == ["phase:   0% 0/5", "phase: 100% 5/5"]


def read_until_closed(controller: int, child: subprocess.Popen) -> str:
    """What `child` wrote to the terminal whose controlling side is `controller`, until it exits."""
    chunks = []
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            child.kill()
            break
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the child's side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    child.wait(timeout=60)
    return b"".join(chunks).decode(errors="replace")
