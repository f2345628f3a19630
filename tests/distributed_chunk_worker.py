"""Run by test_cached_gradients.py under `torchrun --nproc_per_node 2`: SimCLR steps on this rank's images.

Two steps, each from the same initial weights: (a) the plain step with C images per process; (b) the
cached-gradient step with 2C images per process in chunks of C (DDP synchronises once, at the last chunk).
Each writes the loss (averaged over processes), every parameter's gradient and the weights after one SGD step.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from hf_simclr import SimCLRConfig, SimCLRForPreTraining
from hf_simclr.cached_gradients import cached_gradient_step


def step(inputs: dict, per_process: int, chunk_size: int | None) -> dict:
    rank = dist.get_rank()
    model = SimCLRForPreTraining(SimCLRConfig(**inputs["config"]))
    model.load_state_dict(inputs["state"])
    ddp = DistributedDataParallel(model)  # averages gradients over processes; no SyncBatchNorm
    rows = slice(rank * per_process, (rank + 1) * per_process)
    views = torch.cat([inputs["view_a"][rows], inputs["view_b"][rows]])
    output = cached_gradient_step(ddp, views, chunk_size, no_sync=ddp.no_sync)
    loss = output.loss.detach().clone()
    dist.all_reduce(loss)
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    return {"loss": loss / dist.get_world_size(), "grads": grads, "weights": model.state_dict()}


def main(folder: Path) -> None:
    dist.init_process_group("gloo")
    inputs = torch.load(folder / "inputs.pt")
    chunk = inputs["chunk"]
    results = {"plain": step(inputs, chunk, None), "chunked": step(inputs, 2 * chunk, chunk)}
    torch.save(results, folder / f"rank{dist.get_rank()}.pt")
    dist.barrier()  # both ranks done before gloo tears down (a loaded CI run saw rank 0 abort there once)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
