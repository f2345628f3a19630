"""A split's decoded rows written once, on every core and every process: the decoded cache's machinery.

[`fill`] makes the uint8 array of a whole split (`hf_simclr.data.decode_images` says how a row is decoded):

- **Within a process**, `--preprocessing_num_workers` forked worker processes ([`fill_rows`]) write disjoint
  chunks of rows straight into the array: a memory-mapped `.npy`, or anonymous shared memory without a cache
  file. Each row is decoded the same way whoever decodes it, so the bytes do not depend on the workers.
- **Across processes** (`torch.distributed`, when it is initialized, as accelerate does it), each process
  writes its share of the rows into one temporary `.npy` beside the cache, its whole size allocated first
  (a full disk fails before the first image); the file is renamed into place only when every share is
  written, and every process then maps it. Which processes share a file is seen, not configured
  ([`_file_groups`]): every process puts a probe file into the cache folder and looks for the others'. On
  one machine they all see each other's; on several machines they do when the folder is on a shared file
  system (one decode for the whole run), and otherwise the processes of each machine share one file on its
  own disk (one decode per machine).
- **Across runs**, the first process of each group holds this machine's lock on the cache
  ([`machine_lock_file`], in the machine's temporary folder) while it decodes: a second run on the same
  machine waits, then maps the finished cache. Runs on two machines writing one shared folder at once may
  both decode; each writes its own temporary file and the renamed file is the same either way.

Where a split goes when no `--decoded_cache_dir` names a folder ([`cache_folder`]): into memory while it takes
at most `MEMORY_SHARE` of the memory the run's processes may count on ([`free_memory`]), beyond that into a
folder of the `datasets` cache ([`default_cache_dir`]), memory-mapped, so that a split of any size is read
in batches and the host's memory stays bounded. Pretraining's views, its kNN monitor and the evaluation all
ask this module.

An interrupted decode leaves no cache: the temporary file is removed (a SIGKILL leaves it under its
temporary name, `.<cache>.<random>.tmp`, which nothing reads) and the next run decodes the split again. A
failure in any process (an undecodable image) ends every process's call with its message.
"""

from __future__ import annotations

import errno
import hashlib
import math
import mmap
import multiprocessing
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import filelock
import numpy as np
import torch

from .arguments import UsageError
from .folder_format import DECODED_CACHE_FOLDER, full_disk_named, give_plain_mode, temporary_beside
from .progress import progress_bar

# decode(out, rows, workers): write rows `rows` of `out` with `workers` worker processes.
Decode = Callable[[np.ndarray, range, int], None]


def fill(
    shape: tuple[int, ...],
    decode: Decode,
    cache_file: str | Path | None,
    num_workers: int | None,
    all_processes: bool,
    chunk_rows: int,
) -> np.ndarray:
    """The uint8 array of `shape` whose rows `decode` writes, cached in `cache_file` (see the module docstring).

    Args:
        shape (`tuple`): (N, ...) of the array; N rows.
        decode (`Decode`): writes rows of the array it is given.
        cache_file (`str` or `Path`, *optional*): the `.npy` cache, mapped when it holds `shape`; None: each
            process decodes every row into its memory.
        num_workers (`int`, *optional*): worker processes per process ([`worker_count`]).
        all_processes (`bool`): every process of the run makes this call (in the same order, as collective
            calls go) and they share the rows; False: this process decodes alone.
        chunk_rows (`int`): rows a worker decodes at a time.

    Returns:
        `np.ndarray` of dtype uint8: a copy-on-write memory map of the cache, or an array in memory.
    """
    if cache_file is None:
        workers = worker_count(num_workers, shape[0], chunk_rows)
        array = np.empty(shape, dtype=np.uint8) if workers == 1 else _shared_memory(shape)
        decode(array, range(shape[0]), workers)
        return array
    cache_file = Path(cache_file)
    processes = Processes.of_run() if all_processes else Processes()
    if not all(processes.gather(read_cache(cache_file, shape) is not None)):
        _fill_together(shape, decode, cache_file, num_workers, chunk_rows, processes)
    cached = read_cache(cache_file, shape)
    if cached is None:  # renamed into place by this call: only a change behind its back gets here
        raise RuntimeError(f"{cache_file} is not the array of shape {shape} it has just been written as.")
    return cached


def worker_count(requested: int | None, rows: int, chunk_rows: int) -> int:
    """How many worker processes decode `rows` rows in this process.

    `requested` (`--preprocessing_num_workers`), or by default the cores this process may run on, shared among
    this machine's processes (`LOCAL_WORLD_SIZE`, which torchrun and `accelerate launch` set), so that the
    machine's cores are all busy and none is asked twice, with at least `chunk_rows` rows each (a worker's
    start costs about as much as decoding a few hundred small images). Never more workers than rows; one
    where processes cannot be forked (the workers inherit the rows and the array by forking).
    """
    if requested is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        processes_here = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        requested = max(1, min(cores // processes_here, rows // chunk_rows))
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(requested, rows))


# The share of the free memory (a GPU's, or the host's over this machine's processes) a decoded split may take
# and still be kept there: the rest is for the model, its activations and the allocator's slack (a ResNet-50
# at 224 px, batch 256, needs ~25 GB).
MEMORY_SHARE = 0.5


def cache_folder(cache_dir: str | Path | None, split_bytes: int, all_processes: bool = True) -> Path | None:
    """The folder of a split decoded whole on the host (the kNN monitor's, the evaluation's): `cache_dir`
    (`--decoded_cache_dir`) when given; else None (decoded into memory) while the split takes at most
    `MEMORY_SHARE` of the host memory the run's processes may count on ([`fits_in_memory`]), and beyond that
    [`default_cache_dir`], from which it is memory-mapped and read in batches.

    With `all_processes` (as [`fill`] takes it), every process of the run makes this call and they decide
    alike; False: this process decides alone."""
    if cache_dir is not None:
        return Path(cache_dir)
    processes = Processes.of_run() if all_processes else Processes()
    return None if fits_in_memory(split_bytes, torch.device("cpu"), processes) else default_cache_dir()


def fits_in_memory(split_bytes: int, device: torch.device, processes: Processes | None = None) -> bool:
    """The one rule of where a decoded split is kept: in `device`'s memory (the host's for the CPU) when it
    takes at most `MEMORY_SHARE` of what every one of `processes` may count on there ([`free_memory`])."""
    return split_bytes <= MEMORY_SHARE * free_memory(device, processes)


def default_cache_dir() -> Path:
    """Where a split's cache goes without `--decoded_cache_dir` when it is not kept in memory: a folder of the
    datasets cache (`HF_DATASETS_CACHE`), beside the data it is decoded from, shared by every run (the file
    is named after the split's content and size), never inside a run's folder (which is copied and pushed)."""
    return Path(datasets.config.HF_DATASETS_CACHE) / DECODED_CACHE_FOLDER


def free_memory(device: torch.device, processes: Processes | None = None) -> int:
    """Bytes every one of `processes` (default: the run's) may count on, the least over them (a collective
    call among them): CUDA's free memory on `device`; elsewhere (CPU, or MPS's memory
    shared with the host) the host's available memory ([`host_available_memory`]) divided among this machine's
    processes (`LOCAL_WORLD_SIZE`, set by torchrun), which each keep their own copy."""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        free = host_available_memory() // max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return min((processes or Processes.of_run()).gather(free))


def host_available_memory() -> int:
    """The host's available memory in bytes: `MemAvailable` of `/proc/meminfo` on Linux (free memory and the
    page cache it can take back), else the free pages."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Processes:
    """The processes decoding a split together: this one's `rank` among `size` (`torch.distributed`'s)."""

    rank: int = 0
    size: int = 1

    @classmethod
    def of_run(cls) -> Processes:
        """The run's processes when `torch.distributed` is initialized (as accelerate does), else this one."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return cls(torch.distributed.get_rank(), torch.distributed.get_world_size())
        return cls()

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value`, by rank (a collective call: every process makes it)."""
        if self.size == 1:
            return [value]
        values: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(values, value)
        return values


def _fill_together(
    shape: tuple[int, ...],
    decode: Decode,
    cache_file: Path,
    num_workers: int | None,
    chunk_rows: int,
    processes: Processes,
) -> None:
    """Write `cache_file` with every one of `processes`, each its share of the rows (the module docstring).

    In each group of processes sharing a file, its first process (the leader) takes this machine's lock,
    allocates the temporary file unless another run has written the cache meanwhile, every member writes its
    share, and the leader renames the file into place once every process has written (or removes it when one
    failed).
    """
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    group = _file_groups(cache_file.parent, processes)
    leader, lock, temporary, error = group[0], None, None, None
    try:
        if processes.rank == leader:
            lock = _machine_lock(cache_file)
            if read_cache(cache_file, shape) is None:  # not written by another run while this one waited
                temporary = _allocate(cache_file, shape)
        target = processes.gather(temporary)[leader]
        if target is not None:
            try:
                out = np.load(target, mmap_mode="r+")
                rows = _share(shape[0], group.index(processes.rank), len(group))
                decode(out, rows, worker_count(num_workers, len(rows), chunk_rows))
                out.flush()
                del out
            except Exception as raised:  # every process learns of it below, and none keeps the file
                error = raised
        messages = processes.gather(None if error is None else str(error))
        failures = [(rank, message) for rank, message in enumerate(messages) if message is not None]
        if temporary is not None and not failures:
            give_plain_mode(temporary)
            os.replace(temporary, cache_file)
            temporary = None
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        if lock is not None:
            lock.release()
    processes.gather(None)  # every group's cache is in place before any process reads it
    if error is not None:
        raise error
    if failures:
        rank, message = failures[0]
        raise UsageError(f"process {rank} could not decode its share of the split: {message}")


def _file_groups(folder: Path, processes: Processes) -> list[int]:
    """The ranks of the processes that share this process's files in `folder`, lowest first.

    Each process makes a probe file in `folder` and looks for every other's: a process joins the
    lowest-ranked process whose probe it sees (on one machine, or on a file system all machines mount, that
    is process 0 for every process; on machines with disks of their own, each machine's first process).
    """
    if processes.size == 1:
        return [0]
    handle, probe = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        probes = processes.gather(probe)
        leaders = processes.gather(min(rank for rank, path in enumerate(probes) if os.path.exists(path)))
        processes.gather(None)  # every process has looked before any probe goes
    finally:
        os.unlink(probe)
    return [rank for rank, leader in enumerate(leaders) if leader == leaders[processes.rank]]


def _machine_lock(cache_file: Path) -> filelock.FileLock:
    """Hold this machine's lock on `cache_file` ([`machine_lock_file`]): one run decodes a split at a time, a
    second one waits, then finds the cache written."""
    lock = filelock.FileLock(machine_lock_file(cache_file), mode=0o666)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        print(f"Waiting for another run on this machine to finish decoding {cache_file} ...", file=sys.stderr)
        lock.acquire()
    return lock


def machine_lock_file(cache_file: str | Path) -> Path:
    """The lock of a decoded cache on this machine: a file in its temporary folder named by the cache's path
    (not beside the cache, which a shared file system would show to other machines' runs too)."""
    key = hashlib.sha256(str(Path(cache_file).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "hf_simclr-decoding" / key


def _allocate(cache_file: Path, shape: tuple[int, ...]) -> Path:
    """A temporary `.npy` of `shape` beside `cache_file` ([`temporary_beside`], as `write_atomically` names it),
    its whole size allocated on the disk where the file system can (a full disk: `NoSpaceLeft`, before any
    decoding)."""
    temporary = temporary_beside(cache_file)
    try:
        with full_disk_named(cache_file):
            np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=shape).flush()
            if hasattr(os, "posix_fallocate"):
                with open(temporary, "r+b") as file:
                    _reserve(file.fileno(), temporary.stat().st_size)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _reserve(descriptor: int, size: int) -> None:
    """Allocate `size` bytes of the file on its disk: ENOSPC now rather than a SIGBUS while mapping it; a file
    system without allocation (EOPNOTSUPP, EINVAL) fills the file as it is written."""
    try:
        os.posix_fallocate(descriptor, 0, size)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise


def read_cache(cache_file: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """`cache_file` memory-mapped copy-on-write when it is a complete uint8 `.npy` of `shape`, else None."""
    if not cache_file.is_file():
        return None
    try:
        cached = np.load(cache_file, mmap_mode="c")
    except (OSError, ValueError):  # not a complete .npy (e.g. a damaged disk): decode it again
        return None
    return cached if cached.shape == shape and cached.dtype == np.uint8 else None


def _share(rows: int, index: int, parts: int) -> range:
    """Share `index` of `parts` of `rows` rows: consecutive rows, the shares' sizes within one of each other."""
    return range(index * rows // parts, (index + 1) * rows // parts)


def _shared_memory(shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 array of `shape` in anonymous shared memory: what forked workers write there, this process sees."""
    return np.frombuffer(mmap.mmap(-1, math.prod(shape)), dtype=np.uint8).reshape(shape)


def fill_rows(
    fill_chunk: Callable[[np.ndarray, int, int], int],
    out: np.ndarray,
    rows: range,
    num_workers: int,
    chunk_rows: int,
    what: str,
) -> None:
    """Write rows `rows` of `out` by `fill_chunk(out, start, stop)` (returns the rows written), in chunks of at
    most `chunk_rows`, in `num_workers` forked worker processes (or in this one for 1), which write straight
    into `out` (a memory map or shared memory); a progress bar counts images per second (on the first process
    of each machine; redirected to a log, as lines: [`progress_bar`])."""
    size = max(1, min(chunk_rows, -(-len(rows) // num_workers)))
    chunks = [(start, min(start + size, rows.stop)) for start in range(rows.start, rows.stop, size)]
    shown = os.environ.get("LOCAL_RANK", "0") == "0"  # redirected to a log: lines (see hf_simclr.progress)
    with progress_bar(
        total=len(rows), desc=f"{what} ({num_workers} worker(s))", unit="img", shown=shown
    ) as bar:
        if num_workers == 1:
            for chunk in chunks:
                bar.update(fill_chunk(out, *chunk))
            return
        _WORKER_JOB.update(fill_chunk=fill_chunk, out=out)
        try:
            context = multiprocessing.get_context("fork")
            # unlike multiprocessing.Pool, a worker that dies raises (BrokenProcessPool) instead of hanging
            with ProcessPoolExecutor(num_workers, mp_context=context, initializer=_start_worker) as pool:
                futures = [pool.submit(_fill_chunk_in_worker, chunk) for chunk in chunks]
                try:
                    for future in as_completed(futures):
                        bar.update(future.result())
                finally:
                    for future in futures:
                        future.cancel()
        finally:
            _WORKER_JOB.clear()


# What the forked workers use: the chunk's writer (with its rows) and the array (inherited, not pickled).
_WORKER_JOB: dict[str, Any] = {}


def _start_worker() -> None:
    """A worker leaves Ctrl-C and the stop signals to its parent, which ends the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for number in (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def _fill_chunk_in_worker(chunk: tuple[int, int]) -> int:
    return _WORKER_JOB["fill_chunk"](_WORKER_JOB["out"], *chunk)
