"""Distil a fine-tuned classifier into a student on the unlabeled images (SimCLR v2, Section 2.3).

    python scripts/distill.py --teacher runs/ft-v2-1pct --student self --dataset_name uoft-cs/cifar10 \
        --output_dir runs/distill-self-1pct --num_train_epochs 30 --per_device_train_batch_size 256 \
        --learning_rate 0.05 --optim sgd --optim_args momentum=0.9,nesterov=True --weight_decay 0 --bf16
    python scripts/distill.py --teacher runs/ft-v2-1pct --student resnet10t ...   # into a smaller student

The student learns the teacher's soft labels (--distillation_temperature) on every image of --train_split,
its labels unused (--label_fraction adds the teacher's labeled subset); the teacher's logits are computed once
and cached (--teacher_logits on_the_fly scores each augmented view instead). Writes the student (loads with
AutoModelForImageClassification), finetune_results.json and a model card naming the teacher into --output_dir;
scripts/semi_supervised_table.py puts it beside fine-tuning. The logic lives in hf_simclr.finetuning.distill.
"""

from hf_simclr.finetuning.command import DISTILL


def main() -> None:
    DISTILL.main()


if __name__ == "__main__":
    main()
