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

import contextlib
import errno
import glob
import hashlib
import math
import mmap
import multiprocessing
import os
import signal
import socket
import struct
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import datasets
import filelock
import numpy as np
import psutil
import torch

from .arguments import UsageError
from .collective import Processes, timeout_seconds, together
from .folder_format import DECODED_CACHE_FOLDER, full_disk_named, give_plain_mode
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


def _fill_together(
    shape: tuple[int, ...],
    decode: Decode,
    cache_file: Path,
    num_workers: int | None,
    chunk_rows: int,
    processes: Processes,
) -> None:
    """Write `cache_file` with every one of `processes`, each its share of the rows (the module docstring).

    Each step is agreed by every process before the next ([`together`]): a failure anywhere (the folder, the
    probe, this machine's lock, the allocation, an image, the check of the shares) ends the call on every
    process with its message, and none is left waiting in a collective. In each group of processes sharing a
    file, its first process (the leader) takes this machine's lock, allocates the temporary file unless the
    cache is there by then, every member writes its share, and the leader puts the file in place once every
    share is written and read back whole.
    """
    state: dict[str, Any] = {"lock": None, "temporary": None}
    try:
        group = _file_groups(cache_file, processes)
        leads = processes.rank == group[0]
        together(
            processes, "taking the decoded cache's lock", lambda: leads and _lead(state, cache_file, shape)
        )
        target = processes.gather(state["temporary"])[group[0]]  # None: this group's cache is there already
        rows = _share(shape, group.index(processes.rank), len(group))
        digest = together(
            processes,
            "decoding its share of the split",
            lambda: target and _write_share(target, rows, decode, num_workers, chunk_rows),
        )
        shares = processes.gather((rows.start, rows.stop, digest))
        together(
            processes,
            "checking and placing the decoded cache",
            lambda: state["temporary"] and _place(state, cache_file, shape, [shares[rank] for rank in group]),
        )
    finally:
        if state["temporary"] is not None:
            Path(state["temporary"]).unlink(missing_ok=True)
        if state["lock"] is not None:
            state["lock"].release()
    processes.gather(None)  # every group's cache is in place before any process reads it


def _lead(state: dict[str, Any], cache_file: Path, shape: tuple[int, ...]) -> None:
    """The leader's part before the shares: this machine's lock, its stale temporaries removed, the temporary
    file allocated (unless another run has written the cache meanwhile)."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    state["lock"] = _machine_lock(cache_file)
    _remove_stale_temporaries(cache_file)
    if read_cache(cache_file, shape) is None:
        state["temporary"] = _allocate(cache_file, shape)


def _write_share(
    target: str | Path, rows: range, decode: Decode, num_workers: int | None, chunk_rows: int
) -> str:
    """Decode `rows` into the temporary file `target` (memory-mapped; the share is of whole pages: [`_share`]),
    and return the digest of the share as written."""
    out = np.load(target, mmap_mode="r+")
    try:
        if len(rows):  # a split smaller than a page per process leaves some without rows
            decode(out, rows, worker_count(num_workers, len(rows), chunk_rows))
            out.flush()
        return _digest(out[rows.start : rows.stop])
    finally:
        del out


def _place(
    state: dict[str, Any], cache_file: Path, shape: tuple[int, ...], shares: list[tuple[int, int, str]]
) -> None:
    """Read every share back from the file as the disk holds it and compare it with what its process wrote,
    then put the file in place under the cache's name, never over a complete cache that is there already
    (another run on a shared folder may have finished first: its file is kept, and this one dropped).

    Raises:
        UsageError: when a share reads back otherwise: processes on several machines overwrote each other's
            rows (a file system that does not keep concurrent writers of one file apart).
    """
    temporary = Path(state["temporary"])
    written = np.load(temporary, mmap_mode="r")
    damaged = [(start, stop) for start, stop, digest in shares if _digest(written[start:stop]) != digest]
    del written
    if damaged:
        raise UsageError(
            f"the decoded cache {cache_file.name}: rows {damaged[0][0]}-{damaged[0][1] - 1} read back otherwise than "
            f"their process wrote them (processes on several machines overwrote each other's rows in "
            f"{cache_file.parent}); pass a --decoded_cache_dir on a disk of each machine, or on a file system "
            f"that keeps concurrent writers of one file apart."
        )
    give_plain_mode(temporary)
    try:
        os.link(temporary, cache_file)  # fails where a file has the name: a complete cache is never replaced
        temporary.unlink()
    except FileExistsError:  # another run's, finished meanwhile: kept when it is the complete cache
        if read_cache(cache_file, shape) is None:
            os.replace(temporary, cache_file)  # a damaged or cut file under the cache's name
        else:
            temporary.unlink()
    except OSError as error:  # a file system without hard links: the name is taken only if it is free
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOTSUP):
            raise
        os.replace(temporary, cache_file)
    state["temporary"] = None


def _digest(rows: np.ndarray) -> str:
    """A digest of `rows` as they are in memory or on the disk (blake2b of their bytes, in batches)."""
    digest = hashlib.blake2b(digest_size=16)
    step = max(1, (64 << 20) // max(1, rows[:1].nbytes))
    for start in range(0, len(rows), step):
        digest.update(np.ascontiguousarray(rows[start : start + step]).data)
    return digest.hexdigest()


def _file_groups(cache_file: Path, processes: Processes) -> list[int]:
    """The ranks of the processes that share this process's files in the cache's folder, lowest first.

    Each process makes a probe file in the folder (which it creates) and looks for every other's: a process
    joins the lowest-ranked process whose probe it sees (on one machine, or on a file system all machines
    mount, that is process 0 for every process; on machines with disks of their own, each machine's first
    process).
    """
    if processes.size == 1:
        return [0]
    probe: list[str] = []

    def make_probe() -> None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=cache_file.parent)
        os.close(handle)
        probe.append(name)

    try:
        together(processes, f"making its probe file in {cache_file.parent}", make_probe)
        probes = processes.gather(probe[0])
        leaders = processes.gather(min(rank for rank, path in enumerate(probes) if os.path.exists(path)))
        processes.gather(None)  # every process has looked before any probe goes
    finally:
        for name in probe:
            os.unlink(name)
    return [rank for rank, leader in enumerate(leaders) if leader == leaders[processes.rank]]


def _machine_lock(cache_file: Path) -> filelock.FileLock:
    """Hold this machine's lock on `cache_file` ([`machine_lock_file`]): one run decodes a split at a time, a
    second one waits (at most the run's timeout, within which the other processes wait for it), then finds
    the cache written.

    Raises:
        UsageError: when another run holds the lock for longer than that.
    """
    lock = filelock.FileLock(machine_lock_file(cache_file), mode=0o666)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        patience = timeout_seconds() / 2  # well within the others' wait for this process
        print(f"Waiting for another run on this machine to finish decoding {cache_file} ...", file=sys.stderr)
        try:
            lock.acquire(timeout=patience)
        except filelock.Timeout:
            raise UsageError(
                f"another run on this machine has been decoding {cache_file} for more than {patience:.0f} s "
                f"(its lock: {lock.lock_file}): wait for it to finish and run again, raise --ddp_timeout, or pass "
                f"another --decoded_cache_dir."
            ) from None
    return lock


def machine_lock_file(cache_file: str | Path) -> Path:
    """The lock of a decoded cache on this machine: a file in its temporary folder named by the cache's path
    (not beside the cache, which a shared file system would show to other machines' runs too). The folder is
    every user's (mode 1777, as /tmp is): the first user's umask does not lock the others out.

    Raises:
        UsageError: when the folder exists and this user cannot write it (made by another user without that mode).
    """
    folder = Path(tempfile.gettempdir()) / "hf_simclr-decoding"
    if not folder.is_dir():
        folder.mkdir(exist_ok=True)
        with contextlib.suppress(PermissionError):  # another user's, made meanwhile
            os.chmod(folder, 0o1777)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"{folder}, where runs on this machine lock the decoded caches, is not writable by this user; ask its "
            f"owner to `chmod 1777 {folder}`, or set TMPDIR to a folder of your own."
        )
    key = hashlib.sha256(str(Path(cache_file).resolve()).encode()).hexdigest()[:16]
    return folder / key


# The temporary files of a cache: `.<cache>.<host>.<pid>.<random>.tmp`, so that a decode killed on this machine
# is recognised as stale (its process is gone) and removed by the next one.
def _temporary_name(cache_file: Path) -> str:
    return f".{cache_file.name}.{socket.gethostname()}.{os.getpid()}."


def _remove_stale_temporaries(cache_file: Path) -> None:
    """Remove the temporary files of `cache_file` that decodes on this machine left when they were killed (their
    process no longer runs); other machines' are left to them."""
    prefix = f".{cache_file.name}.{socket.gethostname()}."
    for path in cache_file.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = path.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            path.unlink(missing_ok=True)


# The npy header of a cache file fills one page: the rows start on a page boundary, and shares of whole pages
# ([`_share`]) never put two processes' rows on one page.
PAGE_BYTES = 4096


def _allocate(cache_file: Path, shape: tuple[int, ...]) -> Path:
    """A temporary `.npy` of `shape` beside `cache_file`, its header a whole page ([`PAGE_BYTES`]), its whole
    size allocated on the disk where the file system can (a full disk: `NoSpaceLeft`, before any decoding)."""
    handle, name = tempfile.mkstemp(prefix=_temporary_name(cache_file), suffix=".tmp", dir=cache_file.parent)
    temporary = Path(name)
    try:
        with full_disk_named(cache_file), os.fdopen(handle, "r+b") as file:
            file.write(_page_header(shape))
            size = PAGE_BYTES + math.prod(shape)
            file.truncate(size)
            if hasattr(os, "posix_fallocate"):
                _reserve(file.fileno(), size)
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


def _page_header(shape: tuple[int, ...]) -> bytes:
    """The `.npy` (format 1.0) header of a C-ordered uint8 array of `shape`, padded to [`PAGE_BYTES`]."""
    description = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    length = PAGE_BYTES - len(np.lib.format.MAGIC_PREFIX) - 2 - 2  # magic, version, header length
    header = description.ljust(length - 1) + "\n"
    return np.lib.format.MAGIC_PREFIX + bytes([1, 0]) + struct.pack("<H", length) + header.encode("latin1")


def read_cache(cache_file: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """`cache_file` memory-mapped copy-on-write when it is a complete uint8 `.npy` of `shape`, else None."""
    if not cache_file.is_file():
        return None
    try:
        cached = np.load(cache_file, mmap_mode="c")
    except (OSError, ValueError):  # not a complete .npy (e.g. a damaged disk): decode it again
        return None
    return cached if cached.shape == shape and cached.dtype == np.uint8 else None


def _share(shape: tuple[int, ...], index: int, parts: int) -> range:
    """Share `index` of `parts` of the rows of an array of `shape`: consecutive rows, cut where a row starts a
    page of the file (a header of a whole page: [`_page_header`]), so that no page holds two shares' rows
    (a file system that writes back whole pages, such as NFS's clients, would overwrite a neighbour's)."""
    rows, row_bytes = shape[0], math.prod(shape[1:])
    step = PAGE_BYTES // math.gcd(row_bytes, PAGE_BYTES)  # rows per whole number of pages
    units = -(-rows // step)
    start, stop = (min(rows, step * (position * units // parts)) for position in (index, index + 1))
    return range(start, stop)


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
    """A worker leaves Ctrl-C and the stop signals to its parent, which ends the pool, and decodes on one thread
    (it is forked from a process whose torch, OpenMP and CUDA may run threads of their own: each worker is one
    core's share, and none of them runs torch's thread pools or touches the device)."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for number in (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def _fill_chunk_in_worker(chunk: tuple[int, int]) -> int:
    return _WORKER_JOB["fill_chunk"](_WORKER_JOB["out"], *chunk)
