"""Each step's two views, whatever `--augment_on` says: the loop asks for views from a step on, and gets them.

- [`GPUViews`] (`--augment_on gpu`): the training split is decoded once to a uint8 tensor that lives on the
  training device; every step indexes a batch of it ([`DeviceBatches`]) and augments it there in one batched
  pass (`gpu_transforms`). Each step's random draws come from a generator seeded by (seed, step, rank), so a
  resumed run sees exactly the views of an uninterrupted one. On a machine without GPU this runs on the CPU.
- [`CPUViews`] (`--augment_on cpu`): the classic torchvision pipeline in DataLoader workers, resumed with
  Accelerate's `set_epoch` and `skip_first_batches`.

Both give `(2B, 3, S, S)` float views, the first view of each image in rows [0, B), the second in [B, 2B),
in channels-last memory on CUDA (the layout the model is converted to).
"""

from __future__ import annotations

from collections.abc import Iterator

import datasets
import torch
from accelerate import Accelerator
from torch import nn

from ..data import ImageViewDataset, decode_images, decoded_cache_file
from ..gpu_transforms import GPUTwoViewAugmentation
from ..modeling_simclr import split_views
from ..transforms import AugmentationConfig, two_view_batch_transform
from .arguments import DataArguments
from .plan import RunPlan


class GPUViews:
    """Views augmented on the training device from the decoded split, one batched pass per step.

    Args:
        dataset (`datasets.Dataset`): the training split.
        augmentation (`AugmentationConfig`): the recipe.
        plan ([`RunPlan`]): batch sizes and steps per epoch.
        accelerator (`Accelerator`): gives the device, the rank and the preparation of model and optimizer.
        seed (`int`): seeds the epoch permutations and the per-step draws.
        cache_dir (`str`, *optional*): `--decoded_cache_dir`, where the decoded split is cached.
        compile (`bool`): `torch.compile` the augmentation (deterministic, fixed shapes; ~9x faster at 32px on
            an H100). The parameter draw uses a `torch.Generator`, which compile cannot trace.
    """

    name = "gpu"

    def __init__(
        self,
        dataset: datasets.Dataset,
        augmentation: AugmentationConfig,
        plan: RunPlan,
        accelerator: Accelerator,
        seed: int,
        cache_dir: str | None,
        compile: bool,
    ) -> None:
        device, self.rank, self.seed = accelerator.device, accelerator.process_index, seed
        cache = decoded_cache_file(cache_dir, dataset, augmentation.image_size)
        self.images = decode_images(dataset, augmentation.image_size, cache).to(device)
        self.batches = DeviceBatches(self.images, plan.local_batch, self.rank, plan.world_size, seed)
        self.augmentation = GPUTwoViewAugmentation(augmentation).to(device)
        self.augment = torch.compile(self.augmentation.augment) if compile else self.augmentation.augment
        self.generator = torch.Generator(device=device)
        self.plan, self.device, self.accelerator = plan, device, accelerator

    @property
    def memory_images(self) -> torch.Tensor | None:
        """The decoded training split on the device, for the kNN monitor's memory."""
        return self.images

    def prepare(
        self, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """`accelerator.prepare` of the model and optimizer (the batches need none)."""
        return self.accelerator.prepare(model, optimizer)

    def from_step(self, step: int) -> Iterator[torch.Tensor]:
        """The views of step `step`, then of every later step, to the end of the run."""
        while step < self.plan.total_steps:
            epoch, start_batch = self.plan.position(step)
            for batch in self.batches.epoch(epoch, start_batch):
                if step >= self.plan.total_steps:
                    return
                self.generator.manual_seed(self.seed * 1_000_003 + step * self.plan.world_size + self.rank)
                params = self.augmentation.sample_params(
                    2 * batch.shape[0], *batch.shape[2:], self.device, self.generator
                )
                yield channels_last_on_cuda(self.augment(batch, params))
                step += 1


class CPUViews:
    """Views made by torchvision in DataLoader workers (`--dataloader_num_workers`), the classic pipeline.

    Args:
        dataset (`datasets.Dataset`): the training split.
        augmentation (`AugmentationConfig`): the recipe.
        plan ([`RunPlan`]): batch sizes and steps per epoch.
        accelerator (`Accelerator`): prepares the loader (sharded by rank, seedable sampler) with the model.
        num_workers (`int`): DataLoader worker processes (0: augment in the main process).
    """

    name = "cpu"
    memory_images = None  # the kNN monitor decodes its memory itself

    def __init__(
        self,
        dataset: datasets.Dataset,
        augmentation: AugmentationConfig,
        plan: RunPlan,
        accelerator: Accelerator,
        num_workers: int,
    ) -> None:
        self.loader = torch.utils.data.DataLoader(
            ImageViewDataset(dataset, two_view_batch_transform(augmentation)),
            batch_size=plan.local_batch, shuffle=True, drop_last=True, num_workers=num_workers,
            pin_memory=accelerator.device.type == "cuda", persistent_workers=num_workers > 0,
        )  # fmt: skip
        self.plan, self.accelerator = plan, accelerator

    def prepare(
        self, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """`accelerator.prepare` of the model, the optimizer and the loader (sharded by rank)."""
        model, optimizer, self.loader = self.accelerator.prepare(model, optimizer, self.loader)
        return model, optimizer

    def from_step(self, step: int) -> Iterator[torch.Tensor]:
        """The views of step `step`, then of every later step, to the end of the run."""
        while step < self.plan.total_steps:
            epoch, start_batch = self.plan.position(step)
            self.loader.set_epoch(epoch)
            batches = (
                self.accelerator.skip_first_batches(self.loader, start_batch) if start_batch else self.loader
            )
            for batch in batches:
                if step >= self.plan.total_steps:
                    return
                yield channels_last_on_cuda(split_views(batch["pixel_values"]))  # (2B, 3, S, S)
                step += 1


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
    if data_args.augment_on == "cpu":
        return CPUViews(dataset, augmentation, plan, accelerator, data_args.dataloader_num_workers)
    return GPUViews(dataset, augmentation, plan, accelerator, seed, data_args.decoded_cache_dir, compile)


def channels_last_on_cuda(pixel_values: torch.Tensor) -> torch.Tensor:
    """Channels-last memory on CUDA, the layout of the model there (faster convolutions); as is elsewhere."""
    if pixel_values.device.type == "cuda":
        return pixel_values.contiguous(memory_format=torch.channels_last)
    return pixel_values


class DeviceBatches:
    """Batches of a decoded uint8 split that lives on the training device: no per-image Python work.

    Each epoch is a permutation drawn from `seed + epoch`; process `rank` takes its slice of every
    global batch, as Accelerate's sharded loaders do; the last incomplete batch is dropped.

    Args:
        images (`torch.Tensor` of shape `(N, 3, S, S)`, uint8): the decoded split, on the device.
        local_batch (`int`): images per process and step.
        rank (`int`), world_size (`int`): this process and the number of processes.
        seed (`int`): base seed of the epoch permutations.
    """

    def __init__(self, images: torch.Tensor, local_batch: int, rank: int, world_size: int, seed: int) -> None:
        self.images, self.local_batch, self.rank, self.seed = images, local_batch, rank, seed
        self.global_batch = local_batch * world_size
        self.steps_per_epoch = images.shape[0] // self.global_batch

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[torch.Tensor]:
        """Yield this process's uint8 batches `(local_batch, 3, S, S)` of `epoch`, from `start_batch` on."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.images.shape[0], generator=generator).to(self.images.device)
        for batch in range(start_batch, self.steps_per_epoch):
            first = batch * self.global_batch + self.rank * self.local_batch
            yield self.images[order[first : first + self.local_batch]]
