"""Each step's two views, whatever `--augment_on` says: the loop asks for views from a step on, and gets them.

Both ways take the same images at every step ([`BatchOrder`]: each epoch a permutation drawn from
`seed + epoch`, each process its slice of the global batch) and draw each step's augmentation from a
generator seeded by (seed, step, rank), so a resumed run sees exactly the views of an uninterrupted one, and
the views do not depend on the number of DataLoader workers.

- [`GPUViews`] (`--augment_on gpu`): the training split is decoded once to a uint8 tensor that lives on the
  training device; every step indexes a batch of it and augments it there in one batched pass
  (`gpu_transforms`). On a machine without GPU this runs on the CPU.
- [`CPUViews`] (`--augment_on cpu`): the classic torchvision pipeline in DataLoader workers, one step's batch
  per worker task.

Both give `(2B, 3, S, S)` float views, the first view of each image in rows [0, B), the second in [B, 2B),
in channels-last memory on CUDA (the layout the model is converted to).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import datasets
import torch
from accelerate import Accelerator

from ..augmentation import AugmentationConfig
from ..data import ImageViewDataset, decode_images, decoded_cache_file
from ..gpu_transforms import GPUTwoViewAugmentation
from ..modeling_simclr import split_views
from ..transforms import two_view_batch_transform
from .arguments import DataArguments
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

    def step_seed(self, step: int) -> int:
        """The seed of step `step`'s augmentation on this process."""
        return self.seed * 1_000_003 + step * self.plan.world_size + self.rank

    def from_step(self, step: int) -> Iterator[tuple[int, torch.Tensor]]:
        """`(step, indices)` of step `step` and every later step to the end of the run; indices `(local_batch,)`."""
        plan = self.plan
        while step < plan.total_steps:
            epoch, start_batch = plan.position(step)
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.num_images, generator=generator)
            for batch in range(start_batch, plan.steps_per_epoch):
                if step >= plan.total_steps:
                    return
                first = batch * plan.global_batch + self.rank * plan.local_batch
                yield step, order[first : first + plan.local_batch]
                step += 1


class GPUViews:
    """Views augmented on the training device from the decoded split, one batched pass per step.

    Args:
        dataset (`datasets.Dataset`): the training split.
        augmentation (`AugmentationConfig`): the recipe.
        order ([`BatchOrder`]): the images and the seed of each step.
        device (`torch.device`): the training device, where the split is kept and augmented.
        cache_dir (`str`, *optional*): `--decoded_cache_dir`, where the decoded split is cached.
        compile (`bool`): `torch.compile` the augmentation (deterministic, fixed shapes; ~9x faster at 32px on
            an H100). The parameter draw uses a `torch.Generator`, which compile cannot trace.
    """

    name = "gpu"

    def __init__(
        self,
        dataset: datasets.Dataset,
        augmentation: AugmentationConfig,
        order: BatchOrder,
        device: torch.device,
        cache_dir: str | None,
        compile: bool,
    ) -> None:
        self.order, self.device = order, device
        cache = decoded_cache_file(cache_dir, dataset, augmentation.image_size)
        self.images = decode_images(dataset, augmentation.image_size, cache).to(self.device)
        self.augmentation = GPUTwoViewAugmentation(augmentation).to(self.device)
        self.augment = torch.compile(self.augmentation.augment) if compile else self.augmentation.augment
        self.generator = torch.Generator(device=self.device)

    @property
    def memory_images(self) -> torch.Tensor | None:
        """The decoded training split on the device, for the kNN monitor's memory."""
        return self.images

    def from_step(self, first: int) -> Iterator[torch.Tensor]:
        """The views of step `first`, then of every later step, to the end of the run."""
        for step, indices in self.order.from_step(first):
            batch = self.images[indices.to(self.device)]
            self.generator.manual_seed(self.order.step_seed(step))
            params = self.augmentation.sample_params(
                2 * batch.shape[0], *batch.shape[2:], self.device, self.generator
            )
            yield channels_last_on_cuda(self.augment(batch, params))


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
) -> GPUViews | CPUViews:
    """The views `--augment_on` asks for (`auto`: gpu)."""
    order = BatchOrder(len(dataset), plan, accelerator.process_index, seed)
    if data_args.augment_on == "cpu":
        workers = min(data_args.dataloader_num_workers, os.cpu_count() or 1)  # torch warns of more
        return CPUViews(dataset, augmentation, order, accelerator.device, workers)
    return GPUViews(dataset, augmentation, order, accelerator.device, data_args.decoded_cache_dir, compile)


def channels_last_on_cuda(pixel_values: torch.Tensor) -> torch.Tensor:
    """Channels-last memory on CUDA, the layout of the model there (faster convolutions); as is elsewhere."""
    if pixel_values.device.type == "cuda":
        return pixel_values.contiguous(memory_format=torch.channels_last)
    return pixel_values
