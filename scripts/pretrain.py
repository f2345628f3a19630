"""Pretrain a SimCLR encoder on unlabeled images.

    accelerate launch scripts/pretrain.py --dataset_name uoft-cs/cifar10 --output_dir runs/simclr-cifar10
    accelerate launch scripts/pretrain.py recipe.yaml          # the same arguments from a JSON/YAML file
    torchrun --nproc_per_node 2 scripts/pretrain.py ...        # also fine; plain `python` too (one process)

All logic lives in `hf_simclr.training`; `--help` lists every argument with tuning advice.
"""

import sys

from transformers import HfArgumentParser

from hf_simclr.training import DataArguments, ModelArguments, PretrainingArguments, pretrain


def main() -> None:
    parser = HfArgumentParser((ModelArguments, DataArguments, PretrainingArguments))
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(sys.argv[1])
    elif len(sys.argv) == 2 and sys.argv[1].endswith((".yaml", ".yml")):
        model_args, data_args, training_args = parser.parse_yaml_file(sys.argv[1])
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    pretrain(model_args, data_args, training_args)


if __name__ == "__main__":
    main()
