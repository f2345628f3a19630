"""One SimCLR step over a batch larger than memory: cached-gradient chunks (Gao et al. 2021, "Scaling Deep
Contrastive Learning Batch Size under Memory Limited Setup"), with the negatives of the whole batch.

Gradient accumulation does not help a contrastive loss: each accumulated step would see only its own
negatives. [`cached_gradient_step`] instead

1. embeds the batch chunk by chunk without autograd (both views of a chunk's images in one forward, so that
   BatchNorm sees both views together, as in the unchunked step), keeping only z;
2. computes NT-Xent over the whole batch (and every process's negatives, as [`nt_xent_loss`] gathers them)
   and its gradient with respect to z, which is small: `(2B, projection_dim)`;
3. runs each chunk again with autograd, with the random state of its first pass restored (a stochastic
   layer, e.g. timm's drop path, draws the same), and backpropagates its slice of that gradient.

Activation memory is then set by the chunk, not the batch; the extra forward costs about a third of a step.

BatchNorm: a chunk is normalised by its own statistics, as a device holding the chunk's images without
SyncBatchNorm is. Its running statistics are updated once per chunk, in chunk order (ghost batch norm): the
first pass leaves them as they were. Parameters' gradients equal those of `batch / chunk` processes holding
a chunk each; for a model without batch statistics, they equal the unchunked step's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import torch
from torch import nn

from .loss import NTXentOutput, contrastive_accuracy, nt_xent_loss
from .modeling_simclr import SimCLRForPreTrainingOutput, split_views


def cached_gradient_step(
    model: nn.Module,
    pixel_values: torch.Tensor,
    chunk_size: int | None,
    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
    no_sync: Callable[[], AbstractContextManager] | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], NTXentOutput] | None = None,
) -> SimCLRForPreTrainingOutput:
    """Forward and backward of one SimCLR step, in chunks of `chunk_size` images; gradients are left in the
    parameters' `.grad` (accumulated, as `loss.backward()` leaves them) for the optimizer's step.

    Args:
        model (`nn.Module`): a [`SimCLRForPreTraining`], possibly wrapped (DDP, `torch.compile`, accelerate).
            It is called with `pixel_values=` and, for chunks, `return_loss=False`.
        pixel_values (`torch.Tensor`): the step's views, `(2B, 3, H, W)` (first views, then second views) or
            `(B, 2, 3, H, W)` ([`split_views`]).
        chunk_size (`int`, *optional*): images per forward pass; None or B: the plain step (one forward and
            `backward(loss)`, bit-identical to calling the model yourself). Must divide B.
        backward (`Callable`, defaults to `Tensor.backward`): how the loss is backpropagated, e.g.
            `accelerator.backward` (which scales it under fp16). The chunks' passes backpropagate the
            gradient it leaves on z.
        no_sync (`Callable`, *optional*): a context manager factory that suspends DDP's gradient
            all-reduce, e.g. `lambda: accelerator.no_sync(model)`: every chunk but the last runs under it,
            so gradients are synchronised once per step.
        loss (`Callable`, *optional*): the objective, `(z_a, z_b) -> NTXentOutput`, e.g. [`dcl_loss`] or a
            [`ContrastiveObjective`] bound to the step's image rows; it is called once per step, over the whole
            batch (SogCLR's `u` is updated once, chunks or not). None: the model's own NT-Xent.

    Returns:
        [`SimCLRForPreTrainingOutput`] with the whole batch's loss and contrastive top-1/top-5 (detached
        from the graph when chunked) and h and z of every view.

    Raises:
        ValueError: for a chunk that is not positive or does not divide the batch.
    """
    views = split_views(pixel_values)
    batch = views.shape[0] // 2
    if chunk_size is None or chunk_size >= batch:
        if loss is None:
            output = model(pixel_values=views)
            backward(output.loss)
            return output
        output = model(pixel_values=views, return_loss=False)
        result = loss(*output.z.chunk(2))
        backward(result.loss)
        return with_loss(output.h, output.z, result)
    if chunk_size <= 0 or batch % chunk_size:
        raise ValueError(f"chunk_size={chunk_size} must be positive and divide the batch of {batch} images.")
    chunks = [
        torch.cat([views[start : start + chunk_size], views[batch + start : batch + start + chunk_size]])
        for start in range(0, batch, chunk_size)
    ]
    # 1. z of every chunk, without autograd; the random state each chunk started from, for its second pass.
    rng_states, h_parts, z_parts = [], [], []
    with torch.no_grad(), running_statistics_kept(model):
        for chunk in chunks:
            rng_states.append(random_state(chunk.device))
            output = model(pixel_values=chunk, return_loss=False)
            h_parts.append(output.h)
            z_parts.append(output.z)
    # 2. The loss over the whole batch, and its gradient with respect to z.
    z_a = torch.cat([z[:chunk_size] for z in z_parts]).requires_grad_()
    z_b = torch.cat([z[chunk_size:] for z in z_parts]).requires_grad_()
    if loss is None:
        result = nt_xent_loss(z_a, z_b, unwrapped(model).config.loss_temperature)
    else:
        result = loss(z_a, z_b)
    backward(result.loss)
    # 3. Each chunk again, with autograd: its slice of that gradient through the model.
    for index, (chunk, state) in enumerate(zip(chunks, rng_states, strict=True)):
        rows = slice(index * chunk_size, (index + 1) * chunk_size)
        last = index == len(chunks) - 1
        with no_sync() if no_sync is not None and not last else contextlib.nullcontext():
            set_random_state(chunk.device, state)
            z = model(pixel_values=chunk, return_loss=False).z
            z.backward(torch.cat([z_a.grad[rows], z_b.grad[rows]]))
    h = torch.cat([h[:chunk_size] for h in h_parts] + [h[chunk_size:] for h in h_parts])
    return with_loss(h, torch.cat([z_a, z_b]).detach(), result, detach=True)


def with_loss(
    h: torch.Tensor, z: torch.Tensor, result: NTXentOutput, detach: bool = False
) -> SimCLRForPreTrainingOutput:
    """The step's output: h, z, the objective's loss and contrastive top-1/top-5."""
    return SimCLRForPreTrainingOutput(
        loss=result.loss.detach() if detach else result.loss,
        h=h,
        z=z,
        contrastive_top1=contrastive_accuracy(result.logits, result.labels, k=1),
        contrastive_top5=contrastive_accuracy(result.logits, result.labels, k=5),
    )


def unwrapped(model: nn.Module) -> nn.Module:
    """The model inside DDP's `.module` and `torch.compile`'s `._orig_mod` wrappers."""
    while isinstance(getattr(model, "module", None), nn.Module) or hasattr(model, "_orig_mod"):
        model = getattr(model, "_orig_mod", None) or model.module
    return model


@contextlib.contextmanager
def running_statistics_kept(model: nn.Module) -> Iterator[None]:
    """BatchNorm's running statistics (and batch counts) as they were before the block: the first pass
    normalises with each chunk's statistics, as the second will, but only the second updates them."""
    buffers = [
        buffer
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
        for buffer in (module.running_mean, module.running_var, module.num_batches_tracked)
        if buffer is not None
    ]
    saved = [buffer.clone() for buffer in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved, strict=True):
                buffer.copy_(value)


def random_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The CPU generator's state, and the device's when it is a CUDA device."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def set_random_state(device: torch.device, state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    """Restore what [`random_state`] took."""
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)
