"""Each step's rows of a split kept on the host, gathered ahead of the step by a background thread.

The decoded split of a streamed run ([`hf_simclr.pretraining.views.StreamedViews`]) stays a memory map of
its `.npy` cache: only the pages a step reads come into memory, and the kernel's page cache, not the process,
holds them. [`RowGather`] reads the steps' row indices ahead of the training loop and copies each step's rows
into one of a fixed set of buffers (page-locked when the device is CUDA, so the copy to the device does not
block), `PREFETCH_STEPS` steps ahead: the process holds `PREFETCH_STEPS + 1` batches of rows, whatever the
number of images. The gather is `torch.index_select`, which releases the GIL while it copies, so the loop's
Python runs meanwhile.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import torch

# Steps gathered ahead of the one being trained: one covers a step's gather time, a second its jitter (a
# slow read from the disk, the loop's own pauses).
PREFETCH_STEPS = 2

# How often (s) a waiting gather thread looks whether it should stop; how long closing waits for it (a gather
# stuck on a dead disk is left behind: the thread is a daemon, so it never holds up the interpreter's exit).
POLL_SECONDS = 0.1
JOIN_SECONDS = 30


class RowGather:
    """`(step, rows)` for every `(step, indices)` of `steps`: `images[indices]` gathered by a background thread.

    A buffer handed out stays valid until the next one is asked for (or the gather is closed): the consumer
    copies it to the device (`non_blocking` from pinned memory) or uses it before asking again. On CUDA the
    buffer is reused only after the work queued on the current stream by then (the copy) has completed.
    An exception in the thread is raised again in the consumer, at the step it happened; closing stops the
    thread (it is also a daemon, so an interpreter that exits never waits for it).

    Args:
        images (`torch.Tensor` `(N, ...)`, on the CPU): e.g. a memory-mapped decoded split.
        steps (iterator of `(int, torch.Tensor)`): each step and its row indices, `(batch_rows,)` int64.
        batch_rows (`int`): rows of every step (each buffer's first dimension).
        pin_memory (`bool`): page-locked buffers (for a CUDA device).
        prefetch (`int`, defaults to `PREFETCH_STEPS`): steps gathered ahead.
    """

    def __init__(
        self,
        images: torch.Tensor,
        steps: Iterator[tuple[int, torch.Tensor]],
        batch_rows: int,
        pin_memory: bool,
        prefetch: int = PREFETCH_STEPS,
    ) -> None:
        shape = (batch_rows, *images.shape[1:])
        self._free: queue.Queue = queue.Queue()  # (buffer, the CUDA event its last copy waits on, or None)
        for _ in range(prefetch + 1):
            self._free.put((torch.empty(shape, dtype=images.dtype, pin_memory=pin_memory), None))
        self._ready: queue.Queue = queue.Queue()  # (step, buffer), then _END or a _Failed
        self._stop = threading.Event()
        self._lent: torch.Tensor | None = None  # the buffer the consumer holds
        self._cuda = pin_memory and torch.cuda.is_available()
        self._thread = threading.Thread(
            target=self._gather, args=(images, steps), name="hf_simclr-row-gather", daemon=True
        )
        self._thread.start()

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        try:
            while True:
                self._give_back()
                item = self._next_ready()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                step, self._lent = item
                yield step, self._lent
        finally:
            self.close()

    def close(self) -> None:
        """Stop the thread and wait for it (at most one gather and one poll)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=JOIN_SECONDS)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread.is_alive()

    def _give_back(self) -> None:
        """The consumer is done with its buffer: the thread may fill it once the queued copy is done."""
        if self._lent is None:
            return
        done = None
        if self._cuda:
            done = torch.cuda.Event()
            done.record()
        self._free.put((self._lent, done))
        self._lent = None

    def _next_ready(self) -> object:
        while True:
            try:
                return self._ready.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if not self._thread.is_alive() and self._ready.empty():
                    return _Failed(RuntimeError("the row-gathering thread stopped without its rows"))

    def _gather(self, images: torch.Tensor, steps: Iterator[tuple[int, torch.Tensor]]) -> None:
        """The thread: fill free buffers with each step's rows until the steps end or it is stopped."""
        try:
            for step, indices in steps:
                buffer = self._free_buffer()
                if buffer is None:
                    return
                torch.index_select(images, 0, indices, out=buffer)
                self._ready.put((step, buffer))
            self._ready.put(_END)
        except BaseException as error:  # raised again in the consumer
            self._ready.put(_Failed(error))

    def _free_buffer(self) -> torch.Tensor | None:
        """A buffer the consumer gave back, or None once stopped (or the main thread is gone)."""
        while not self._stop.is_set() and threading.main_thread().is_alive():
            try:
                buffer, copied = self._free.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if copied is not None:
                copied.synchronize()
            return buffer
        return None


class _Failed:
    """An exception of the gather thread, handed to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()  # no more steps
