"""Pretrain a SimCLR encoder on unlabeled images.

    accelerate launch scripts/pretrain.py --dataset_name uoft-cs/cifar10 --output_dir runs/simclr-cifar10
    accelerate launch scripts/pretrain.py configs/cifar10-resnet18.yaml            # a recipe file
    accelerate launch scripts/pretrain.py configs/cifar10-resnet18.yaml --output_dir runs/x  # + overrides
    torchrun --nproc_per_node 2 scripts/pretrain.py ...        # also fine; plain `python` too (one process)

All logic lives in `hf_simclr.training`; `--help` lists every argument with tuning advice.
"""

import sys

from transformers import HfArgumentParser

from hf_simclr.training import (
    DataArguments,
    ModelArguments,
    PretrainingArguments,
    pretrain,
    recipe_arguments,
)


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0].endswith((".json", ".yaml", ".yml")):
        argv = recipe_arguments(argv[0]) + argv[1:]
    parser = HfArgumentParser((ModelArguments, DataArguments, PretrainingArguments))
    try:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # a value out of range: usage and the message, no traceback (exit code 2)
        parser.error(str(error))
    pretrain(model_args, data_args, training_args)


if __name__ == "__main__":
    main()
