"""Each step's views: the same images on both paths, drawn from the step's seed whatever the worker count."""

from __future__ import annotations

import itertools

import datasets
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from PIL import Image

from hf_simclr.pretraining.arguments import PretrainingArguments
from hf_simclr.pretraining.data_arguments import DataArguments
from hf_simclr.pretraining.plan import RunPlan
from hf_simclr.pretraining.views import BatchOrder, build_views


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)) for _ in range(12)]
    return datasets.Dataset.from_dict(
        {"image": images}, features=datasets.Features({"image": datasets.Image()})
    )


def views_of(
    split: datasets.Dataset, augment_on: str, workers: int, start: int, steps: int
) -> list[torch.Tensor]:
    data = DataArguments(
        dataset_name="unused", image_size=16, augment_on=augment_on, dataloader_num_workers=workers
    )
    plan = RunPlan.create(
        PretrainingArguments(output_dir="unused", max_steps=5, per_device_train_batch_size=4),
        len(split),
        world_size=1,
    )
    views = build_views(data, split, data.augmentation(), plan, Accelerator(cpu=True), seed=3, compile=False)
    return list(itertools.islice(views.from_step(start), steps))


def test_cpu_views_depend_on_the_step_only_not_on_workers_or_where_the_run_started(tiny_split):
    uninterrupted = views_of(tiny_split, "cpu", workers=0, start=0, steps=5)  # 3 steps per epoch: 2 epochs
    assert [tuple(v.shape) for v in uninterrupted] == [(8, 3, 16, 16)] * 5
    assert not torch.equal(uninterrupted[0], uninterrupted[1])
    with_a_worker = views_of(tiny_split, "cpu", workers=1, start=0, steps=5)
    resumed = views_of(tiny_split, "cpu", workers=0, start=2, steps=3)  # mid-epoch, across the epoch's end
    for expected, got in zip(uninterrupted, with_a_worker, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    for expected, got in zip(uninterrupted[2:], resumed, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_gpu_views_resume_exactly_too(tiny_split):
    uninterrupted = views_of(tiny_split, "gpu", workers=0, start=0, steps=5)
    resumed = views_of(tiny_split, "gpu", workers=0, start=4, steps=1)
    torch.testing.assert_close(resumed[0], uninterrupted[4], rtol=0, atol=0)


def test_every_process_takes_its_slice_of_each_global_batch_and_every_image_once_per_epoch():
    args = PretrainingArguments(output_dir="unused", max_steps=6, per_device_train_batch_size=2)
    plan = RunPlan.create(args, num_images=13, world_size=2)  # 3 steps per epoch; one image left out
    orders = [BatchOrder(13, plan, rank, seed=0) for rank in range(2)]
    steps = [list(order.from_step(0)) for order in orders]
    for epoch in range(2):
        taken = torch.cat(
            [indices for rank in range(2) for _, indices in steps[rank][3 * epoch : 3 * epoch + 3]]
        )
        assert len(set(taken.tolist())) == 12
    assert [step for step, _ in steps[0]] == list(range(6))
    assert orders[0].step_seed(4) != orders[1].step_seed(4) != orders[0].step_seed(5)


def test_a_larger_stored_size_crops_from_the_stored_pixels_and_antialiases_to_the_view(tiny_split):
    # Before: the split was decoded at --image_size only; a crop never held more pixels than the view.
    from hf_simclr.data import decode_images
    from hf_simclr.gpu_transforms import GPUTwoViewAugmentation

    data = DataArguments(dataset_name="unused", image_size=8, stored_image_size=16)
    plan = RunPlan.create(
        PretrainingArguments(output_dir="unused", max_steps=2, per_device_train_batch_size=4),
        12,
        world_size=1,
    )
    views = build_views(
        data, tiny_split, data.augmentation(), plan, Accelerator(cpu=True), seed=3, compile=False
    )
    assert tuple(views.images.shape) == (12, 3, 16, 16)  # stored at 16 px
    assert views.memory_images is None  # the kNN monitor decodes its 8 px evaluation views itself
    first = next(iter(views.from_step(0)))
    assert tuple(first.shape) == (8, 3, 8, 8)
    # The same as the augmentation given the 16 px images directly with the step's seed (its crops of the
    # stored size, shrunk with antialiasing), and not what 8 px storage gives.
    rows = BatchOrder(12, plan, rank=0, seed=3)
    step, indices = next(rows.from_step(0))
    augmentation = GPUTwoViewAugmentation(data.augmentation())
    generator = torch.Generator().manual_seed(rows.step_seed(step))
    stored = decode_images(tiny_split, 16)[indices]
    params = augmentation.sample_params(8, 16, 16, torch.device("cpu"), generator)
    torch.testing.assert_close(first, augmentation.augment(stored, params), rtol=0, atol=0)
    at_view_size = views_of(tiny_split, "gpu", workers=0, start=0, steps=1)[0]
    assert at_view_size.shape[-1] == 16 and not torch.equal(first, at_view_size[..., ::2, ::2])


def test_a_stored_size_that_cannot_be_honoured_is_refused_when_parsed(capsys):
    from hf_simclr.arguments import UsageError
    from hf_simclr.pretraining.command import PRETRAIN

    with pytest.raises(UsageError, match="stored_image_size") as error:
        DataArguments(dataset_name="unused", image_size=16, stored_image_size=8)
    assert "at least the view's --image_size (16)" in str(error.value)
    with pytest.raises(SystemExit):  # GPU views only: its declared condition (tests/test_conditions.py)
        PRETRAIN.parse(["--image_size", "16", "--stored_image_size", "32", "--augment_on", "cpu"])
    assert "--stored_image_size 32 applies with --augment_on gpu or auto" in capsys.readouterr().err
