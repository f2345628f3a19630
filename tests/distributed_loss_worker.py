"""Run by test_loss.py under `torchrun --nproc_per_node 2`: NT-Xent on this rank's half of the batch."""

import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from hf_simclr.loss import nt_xent_loss


def main(folder: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    inputs = torch.load(folder / "inputs.pt")
    encoder = torch.nn.Linear(12, 6)
    encoder.load_state_dict(inputs["state"])
    model = DistributedDataParallel(encoder)  # averages gradients over processes
    local = inputs["x_a"].shape[0] // world
    rows = slice(rank * local, (rank + 1) * local)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the gather uses no deprecated torch API
        loss = nt_xent_loss(model(inputs["x_a"][rows]), model(inputs["x_b"][rows]), 0.5).loss
        loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= world
    torch.save(
        {"loss": mean_loss, "weight_grad": encoder.weight.grad, "bias_grad": encoder.bias.grad},
        folder / f"rank{rank}.pt",
    )
    dist.barrier()  # both ranks done before gloo tears down (a loaded CI run saw rank 0 abort there once)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
