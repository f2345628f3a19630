"""Fine-tune a pretrained SimCLR encoder (or the same network from random init) on a fraction of the labels.

    python scripts/finetune.py --model_name_or_path runs/simclr-cifar10 --dataset_name uoft-cs/cifar10 \
        --label_fraction 0.1 --output_dir runs/finetune-simclr-10pct --num_train_epochs 30 \
        --per_device_train_batch_size 256 --learning_rate 0.05 --optim sgd \
        --optim_args momentum=0.9,nesterov=True --weight_decay 0 --bf16
    python scripts/finetune.py ... --init random --output_dir runs/finetune-random-10pct   # the baseline

Every TrainingArguments option works (--bf16, --eval_strategy epoch, --report_to tensorboard, several GPUs
with `accelerate launch` or `torchrun`, ...), except --push_to_hub (upload --output_dir when the run ends)
and --fp16 without a GPU, refused when parsed. Writes the fine-tuned model (loads with
AutoModelForImageClassification) and finetune_results.json (top-1/3/5 on --eval_split) into --output_dir.
The logic lives in hf_simclr.finetuning (the job: finetuning/run.py); scripts/semi_supervised_table.py gathers the results.
"""

from hf_simclr.finetuning.command import FINETUNE


def main() -> None:
    FINETUNE.main()


if __name__ == "__main__":
    main()
