"""Progress of a long phase: a bar on a terminal, lines in a log. The one rule for every bar of the package.

A tqdm bar redraws one line in place: `\\r` and, for bars under another, cursor movements, several times a
second. On a terminal that is the bar; redirected to a file (a scheduler's log, `> run.log 2>&1`) each redraw
stays in the file, which then holds one endless line of control characters. So [`progress_bar`] gives tqdm's
bar where stderr is a terminal (or a notebook's widget, which tqdm.auto draws), and elsewhere
[`ProgressLines`]: one line when the phase starts, one when it ends, a line for each value it is told to show
(pretraining's log records), and otherwise at most one line every `LINE_INTERVAL_SECONDS`; the same text as
the bar, without the bar. Every bar of the package is made here; only the kNN monitor's, which nest under
pretraining's, stay out of a log (`on_a_terminal`): its result is a line of its own. Imports nothing of the
package and no torch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

# Redirected, a phase says how far it is at most this often besides its start, its end and its records: a
# phase of hours adds a line a minute to the log, not one per update.
LINE_INTERVAL_SECONDS = 60.0


def on_a_terminal() -> bool:
    """Whether a bar is drawn here: stderr is a terminal, or tqdm draws a notebook's widget (no text at all)."""
    if tqdm.__module__ == "tqdm.notebook":
        return True
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except ValueError:  # a closed stream
        return False


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str | None = None,
    total: int | None = None,
    unit: str = "it",
    initial: int = 0,
    leave: bool = False,
    shown: bool = True,
) -> tqdm | ProgressLines:
    """The progress of a phase: tqdm's bar on a terminal ([`on_a_terminal`]), else [`ProgressLines`].

    Both are used the same way: iterated over, or `update(n)`, `set_postfix(**values)`, `write(text)` and
    `close()` (also as a context manager).

    Args:
        iterable (`Iterable`, *optional*): what the phase goes through (its length is the total).
        desc (`str`, *optional*): what the phase is (`"features (model, train)"`), at the start of each line.
        total (`int`, *optional*): its units of work, when not iterated over.
        unit (`str`, defaults to `"it"`): what one unit is (`"step"`, `"batch"`, `"img"`).
        initial (`int`, defaults to 0): units already done (a resumed run).
        leave (`bool`, defaults to False): on a terminal, keep the finished bar (lines always stay).
        shown (`bool`, defaults to True): False shows nothing (another process's share, a bar not asked for).
    """
    if shown and not on_a_terminal():
        return ProgressLines(iterable, desc=desc, total=total, unit=unit, initial=initial)
    return tqdm(iterable, desc=desc, total=total, unit=unit, initial=initial, leave=leave, disable=not shown)


class ProgressLines:
    """A bar's counterpart for a log file: its text (`desc:  50% 3/6 [00:02<00:02, 1.43step/s, loss=...]`)
    written as whole lines to stderr, at the start, at each `set_postfix`, at the end, and otherwise at most
    every `interval` seconds. Made by [`progress_bar`]; the arguments are its own."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        desc: str | None = None,
        total: int | None = None,
        unit: str = "it",
        initial: int = 0,
        interval: float = LINE_INTERVAL_SECONDS,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.n, self.interval, self.postfix, self.closed = initial, interval, "", False
        self.started = time.monotonic()
        self.line()

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None, "ProgressLines made without an iterable: call update() instead"
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """`n` more units done; a line when the last one is `interval` seconds old."""
        self.n += n
        if time.monotonic() - self.last_line >= self.interval:
            self.line()

    def set_postfix(self, **values: Any) -> None:
        """Values to show beside the count (pretraining's log record), written at once as a line."""
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())
        self.line()

    def close(self) -> None:
        """The phase's last line (how far it got, in how long), unless the last line said it already; once."""
        if not self.closed:
            self.closed = True
            if self.n != self.last_n:
                self.line()

    @staticmethod
    def write(text: str) -> None:
        """A message of the phase (as `tqdm.write`: to stdout)."""
        print(text, flush=True)

    def line(self) -> None:
        """The bar's text, without the bar, as one line on stderr."""
        self.last_line, self.last_n = time.monotonic(), self.n
        text = tqdm.format_meter(
            self.n,
            self.total,
            self.last_line - self.started,
            ncols=0,  # no bar: the counts, the times and the rate
            prefix=self.desc or "",
            unit=self.unit,
            postfix=self.postfix or None,
        )
        print(text, file=sys.stderr, flush=True)


# What [`progress_bar`] returns: the functions that take a phase's progress are annotated with it.
Progress = tqdm | ProgressLines
