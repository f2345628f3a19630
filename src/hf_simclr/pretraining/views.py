"""Each step's two views, whatever `--augment_on` says: the loop asks for views from a step on, and gets them.

Both ways take the same images at every step ([`BatchOrder`]: each epoch a permutation drawn from
`seed + epoch`, each process its slice of the global batch) and draw each step's augmentation from a
generator seeded by (seed, step, rank), so a resumed run sees exactly the views of an uninterrupted one, and
the views do not depend on the number of DataLoader workers.

- [`GPUViews`] (`--augment_on gpu`): the training split is decoded once to a uint8 tensor that lives on the
  training device; every step indexes a batch of it and augments it there in one batched pass
  (`gpu_transforms`). On a machine without GPU this runs on the CPU.
- [`StreamedViews`] (`--augment_on gpu` with a split beyond the device's memory, `--keep_decoded_on`): the
  same views, the decoded split kept on the host as a memory-mapped cache file, each step's rows gathered
  ahead by a background thread ([`RowGather`]) and copied to the device.
- [`CPUViews`] (`--augment_on cpu`): the classic torchvision pipeline in DataLoader workers, one step's batch
  per worker task.

Both give `(2B, 3, S, S)` float views, the first view of each image in rows [0, B), the second in [B, 2B),
in channels-last memory on CUDA (the layout the model is converted to).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
from accelerate import Accelerator

from ..arguments import UsageError
from ..augmentation import AugmentationConfig
from ..data import ImageViewDataset, decode_images, decoded_cache_file
from ..decoded_cache import default_cache_dir, fits_in_memory, free_memory
from ..gpu_transforms import GPUTwoViewAugmentation
from ..modeling_simclr import split_views
from ..paths import megabytes
from ..transforms import two_view_batch_transform
from .data_arguments import DataArguments
from .host_gather import RowGather
from .plan import RunPlan


class BatchOrder:
    """Which images each step of a process takes: no per-image Python work, and the same for both views.

    Each epoch is a permutation drawn from `seed + epoch`; process `rank` takes its slice of every global
    batch, as Accelerate's sharded loaders do; the last incomplete batch is dropped. Each step's random
    augmentation is drawn from a generator seeded by [`step_seed`].

    Args:
        num_images (`int`): images of the training split.
        plan ([`RunPlan`]): batch sizes, processes, steps per epoch and in all.
        rank (`int`): this process.
        seed (`int`): base seed of the epoch permutations and of the per-step draws.
    """

    def __init__(self, num_images: int, plan: RunPlan, rank: int, seed: int) -> None:
        self.num_images, self.plan, self.rank, self.seed = num_images, plan, rank, seed
        self._epoch: tuple[int, torch.Tensor] | None = None  # the last epoch's permutation, drawn once

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The permutation of the training split's rows that epoch `epoch` takes, drawn from `seed + epoch`."""
        if self._epoch is None or self._epoch[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._epoch = (epoch, torch.randperm(self.num_images, generator=generator))
        return self._epoch[1]

    def indices(self, step: int) -> torch.Tensor:
        """The rows of the training split that step `step` takes on this process, `(local_batch,)`: what the
        step's views show, for what keeps a state per image (SogCLR's u) or reads its labels (the online head)."""
        plan = self.plan
        epoch, batch = plan.position(step)
        first = batch * plan.global_batch + self.rank * plan.local_batch
        return self.epoch_order(epoch)[first : first + plan.local_batch]

    def step_seed(self, step: int) -> int:
        """The seed of step `step`'s augmentation on this process."""
        return self.seed * 1_000_003 + step * self.plan.world_size + self.rank

    def from_step(self, step: int) -> Iterator[tuple[int, torch.Tensor]]:
        """`(step, indices)` of step `step` and every later step to the end of the run; indices `(local_batch,)`."""
        plan = self.plan
        while step < plan.total_steps:
            yield step, self.indices(step)
            step += 1


class GPUViews:
    """Views augmented on the training device from the decoded split, one batched pass per step.

    Args:
        images (`torch.Tensor` of dtype uint8, `(N, 3, S, S)`): the decoded training split
            ([`decode_images`]), moved to `device` here.
        augmentation (`AugmentationConfig`): the recipe.
        order ([`BatchOrder`]): the images and the seed of each step.
        device (`torch.device`): the training device, where the split is kept and augmented.
        compile (`bool`): `torch.compile` the augmentation (deterministic, fixed shapes; ~9x faster at 32px on
            an H100). The parameter draw uses a `torch.Generator`, which compile cannot trace.
    """

    name = "gpu"

    def __init__(
        self,
        images: torch.Tensor,
        augmentation: AugmentationConfig,
        order: BatchOrder,
        device: torch.device,
        compile: bool,
    ) -> None:
        self.order, self.device = order, device
        self.images = self.keep(images)
        self.augmentation = GPUTwoViewAugmentation(augmentation).to(self.device)
        self.augment = torch.compile(self.augmentation.augment) if compile else self.augmentation.augment
        self.generator = torch.Generator(device=self.device)

    def keep(self, images: torch.Tensor) -> torch.Tensor:
        """Where the decoded split lives: on the device."""
        return images.to(self.device)

    @property
    def memory_images(self) -> torch.Tensor | None:
        """The decoded training split (on the device; on the host when streamed), for the kNN monitor's
        memory, which encodes it in batches; None when it is stored larger than the views (`--stored_image_size`):
        the monitor then decodes the evaluation views itself."""
        return self.images if self.images.shape[-1] == self.augmentation.config.image_size else None

    def from_step(self, first: int) -> Iterator[torch.Tensor]:
        """The views of step `first`, then of every later step, to the end of the run."""
        with contextlib.closing(self.batches(first)) as batches:
            for step, batch in batches:
                self.generator.manual_seed(self.order.step_seed(step))
                params = self.augmentation.sample_params(
                    2 * batch.shape[0], *batch.shape[2:], self.device, self.generator
                )
                yield channels_last_on_cuda(self.augment(batch, params))

    def batches(self, first: int) -> Iterator[tuple[int, torch.Tensor]]:
        """`(step, images)` of step `first` and every later step: the step's uint8 rows on the device."""
        for step, indices in self.order.from_step(first):
            yield step, self.images[indices.to(self.device)]


class StreamedViews(GPUViews):
    """[`GPUViews`]'s views (bit for bit) from a decoded split kept on the host as a memory map.

    Each step's rows are gathered from the memory-mapped cache by a background thread `PREFETCH_STEPS` steps
    ahead ([`RowGather`]: into a fixed set of buffers, pinned on CUDA) and copied to the device without
    blocking; the augmentation, its per-step seed and so the views are [`GPUViews`]'s. The process holds a
    few batches of rows, whatever the number of images; the kernel's page cache keeps what it can of the file.

    Args:
        images (`torch.Tensor` of dtype uint8, `(N, 3, S, S)`): the decoded split, memory-mapped
            ([`decode_images`] with a cache file).
        augmentation, order, device, compile: as [`GPUViews`].
        cache_file (`Path`): the file `images` maps, for the run's headline.
    """

    def __init__(
        self,
        images: torch.Tensor,
        augmentation: AugmentationConfig,
        order: BatchOrder,
        device: torch.device,
        compile: bool,
        cache_file: Path,
    ) -> None:
        super().__init__(images, augmentation, order, device, compile)
        self.cache_file = cache_file

    def keep(self, images: torch.Tensor) -> torch.Tensor:
        """Where the decoded split lives: on the host, as it is (a memory map)."""
        return images

    def batches(self, first: int) -> Iterator[tuple[int, torch.Tensor]]:
        """`(step, images)` as [`GPUViews.batches`], gathered on the host and copied to the device."""
        gather = RowGather(
            self.images, self.order.from_step(first), self.order.plan.local_batch, self.device.type == "cuda"
        )
        with contextlib.closing(gather):
            for step, rows in gather:  # rows: valid until the next step is asked for
                yield step, rows.to(self.device, non_blocking=True)


class CPUViews:
    """Views made by torchvision in DataLoader workers (`--dataloader_num_workers`), the classic pipeline.

    Args:
        dataset (`datasets.Dataset`): the training split.
        augmentation (`AugmentationConfig`): the recipe.
        order ([`BatchOrder`]): the images and the seed of each step.
        device (`torch.device`): the training device, where each batch of views goes.
        num_workers (`int`): DataLoader worker processes (0: augment in the main process).
    """

    name = "cpu"
    memory_images = None  # the kNN monitor decodes its memory itself

    def __init__(
        self,
        dataset: datasets.Dataset,
        augmentation: AugmentationConfig,
        order: BatchOrder,
        device: torch.device,
        num_workers: int,
    ) -> None:
        self.views = StepSeededViews(dataset, augmentation)
        self.order, self.device, self.num_workers = order, device, num_workers

    def from_step(self, first: int) -> Iterator[torch.Tensor]:
        """The views of step `first`, then of every later step, to the end of the run."""
        keys = (  # one batch per step: (the step's seed, row) for each of its rows
            [(self.order.step_seed(step), int(row)) for row in rows]
            for step, rows in self.order.from_step(first)
        )
        loader = torch.utils.data.DataLoader(
            self.views,
            batch_sampler=keys,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for batch in loader:
            pixel_values = batch["pixel_values"].to(self.device, non_blocking=True)
            yield channels_last_on_cuda(split_views(pixel_values))  # (2B, 3, S, S)


class StepSeededViews(torch.utils.data.Dataset):
    """The two views of a step's rows, drawn on the CPU from the step's seed, whichever worker draws them.

    Read by keys `(seed, row)`, a step's batch at a time (`__getitems__`): the CPU generator is seeded with
    the step's seed for the batch and restored after, so the views depend on the step only.
    """

    def __init__(self, dataset: datasets.Dataset, augmentation: AugmentationConfig) -> None:
        self.rows = ImageViewDataset(dataset, two_view_batch_transform(augmentation))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[dict]:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(keys[0][0])
            return self.rows.__getitems__([row for _, row in keys])


def build_views(
    data_args: DataArguments,
    dataset: datasets.Dataset,
    augmentation: AugmentationConfig,
    plan: RunPlan,
    accelerator: Accelerator,
    seed: int,
    compile: bool,
    split: DecodedSplit | None = None,
) -> GPUViews | CPUViews:
    """The views `--augment_on` asks for (`auto`: gpu), the GPU ones from the split where `split` says
    (default: [`decoded_split`])."""
    order = BatchOrder(len(dataset), plan, accelerator.process_index, seed)
    device = accelerator.device
    if data_args.augment_on == "cpu":
        workers = min(data_args.dataloader_num_workers, os.cpu_count() or 1)  # torch warns of more
        return CPUViews(dataset, augmentation, order, device, workers)
    split = split or decoded_split(data_args, dataset, augmentation.image_size, device)
    images = decode_images(
        dataset, split.image_size, split.cache_file, num_workers=data_args.preprocessing_num_workers
    )
    if split.place == "device":
        views = GPUViews(images, augmentation, order, device, compile)
    else:
        views = StreamedViews(images, augmentation, order, device, compile, split.cache_file)
    return views


@dataclass(frozen=True)
class DecodedSplit:
    """How GPU views hold the decoded training split, decided once before it is decoded.

    Attributes:
        place (`str`): `"device"` (all of it in the device's memory) or `"host"` (streamed from a memory map).
        image_size (`int`): the side it is decoded to (`--stored_image_size`, default the view's).
        cache_file (`Path`, *optional*): the `.npy` it is decoded into and mapped from; None: decoded in memory.
        nbytes (`int`): its size, N x 3 x S x S.
    """

    place: str
    image_size: int
    cache_file: Path | None
    nbytes: int


def decoded_split(
    data_args: DataArguments, dataset: datasets.Dataset, view_size: int, device: torch.device
) -> DecodedSplit:
    """Where the GPU views keep the training split ([`decoded_split_place`]) and the cache file they map:
    `--decoded_cache_dir`, or when streamed without it the datasets cache
    ([`hf_simclr.decoded_cache.default_cache_dir`])."""
    size = data_args.stored_image_size or view_size
    nbytes = len(dataset) * 3 * size**2
    place = decoded_split_place(data_args.keep_decoded_on, nbytes, device)
    folder = data_args.decoded_cache_dir or (default_cache_dir() if place == "host" else None)
    return DecodedSplit(place, size, decoded_cache_file(folder, dataset, size), nbytes)


def decoded_split_place(setting: str, split_bytes: int, device: torch.device) -> str:
    """Where the decoded split is kept for GPU views: `"device"` or `"host"` (streamed).

    `--keep_decoded_on host` is taken as it is, and so is `device` (refused on CUDA for a split larger than the
    GPU's free memory, which would fail later with an out-of-memory error); `auto` keeps the split on the
    device when it takes at most `MEMORY_SHARE` of the device's free memory (the least over the run's
    processes: [`fits_in_memory`], the rule the evaluation's splits follow too, so that every process decides
    alike), and streams it from the host otherwise.

    Raises:
        UsageError: for `--keep_decoded_on device` with a split beyond the GPU's free memory.
    """
    if setting == "host" or (setting == "device" and device.type != "cuda"):
        return setting
    if setting == "auto":
        return "device" if fits_in_memory(split_bytes, device) else "host"
    free = free_memory(device)
    if split_bytes > free:
        raise UsageError(
            f"--keep_decoded_on device: the decoded training split takes {megabytes(split_bytes)}, more than "
            f"the {megabytes(free)} free on {device}; pass --keep_decoded_on host (or auto) to stream it from "
            f"a memory-mapped cache, or a smaller --image_size or --max_train_samples."
        )
    return setting


def channels_last_on_cuda(pixel_values: torch.Tensor) -> torch.Tensor:
    """Channels-last memory on CUDA, the layout of the model there (faster convolutions); as is elsewhere."""
    if pixel_values.device.type == "cuda":
        return pixel_values.contiguous(memory_format=torch.channels_last)
    return pixel_values
