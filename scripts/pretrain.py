"""Pretrain a SimCLR encoder on unlabeled images.

    accelerate launch scripts/pretrain.py --dataset_name uoft-cs/cifar10 --output_dir runs/simclr-cifar10
    accelerate launch scripts/pretrain.py configs/cifar10-resnet18.yaml            # a recipe file
    accelerate launch scripts/pretrain.py configs/cifar10-resnet18.yaml --output_dir runs/x  # + overrides
    torchrun --nproc_per_node 2 scripts/pretrain.py ...        # also fine; plain `python` too (one process)

The logic lives in `hf_simclr.pretraining`; `--help` lists every argument with tuning advice.
"""

from hf_simclr.pretraining.command import PRETRAIN


def main() -> None:
    PRETRAIN.main()


if __name__ == "__main__":
    main()
