"""`scripts/pretrain.py`'s command line: the run's settings ([`hf_simclr.pretraining.arguments`]) read as one
[`Command`], an optional recipe file first, and the flags people bring from Trainer and the accelerate
examples answered with this script's own."""

from __future__ import annotations

from ..command import Command
from .arguments import PRETRAINING_ARGUMENTS

# Flags of transformers' Trainer and of the accelerate / transformers example scripts that people type here,
# each with this script's way of saying it (every --flag named here is an option: tests/test_help.py).
_CHUNKS = (
    "for a batch larger than memory, give --chunk_size N (cached-gradient chunks: every step keeps the "
    "negatives of its whole batch at the cost of one extra forward; accumulated steps would each see only "
    "their own negatives, which is not the batch SimCLR needs)"
)
_MONITOR = (
    "the kNN monitor evaluates during training (--knn_every_epochs N); scripts/linear_probe.py after it"
)
ELSEWHERE_FLAGS = (
    ("bf16", "give --mixed_precision bf16 (--mixed_precision auto, the default, is bf16 on a GPU)"),
    ("fp16", "give --mixed_precision fp16 (CUDA only)"),
    ("gradient_accumulation_steps", _CHUNKS),
    ("gradient_checkpointing", _CHUNKS),
    ("save_total_limit", "give --checkpoints_total_limit K (keeps the last K checkpoints; 0: all)"),
    ("save_steps", "give --checkpointing_steps N"),
    ("save_strategy", "give --checkpointing_steps epoch, N (steps) or none"),
    ("do_train", "pretrain.py always trains: leave it out"),
    ("do_eval", _MONITOR),
    ("eval_strategy", _MONITOR),
    ("evaluation_strategy", _MONITOR),
    ("eval_steps", _MONITOR),
    ("warmup_steps", "give --warmup_epochs E (linear warmup, then cosine decay)"),
    ("warmup_ratio", "give --warmup_epochs E (linear warmup, then cosine decay)"),
    ("lr_scheduler_type", "the schedule is the paper's: linear warmup (--warmup_epochs), then cosine decay"),
    ("max_grad_norm", "pretrain.py does not clip gradients"),
    ("train_batch_size", "give --per_device_train_batch_size N (images per process)"),
    ("batch_size", "give --per_device_train_batch_size N (images per process)"),
    ("max_train_steps", "give --max_steps N"),
    ("epochs", "give --num_train_epochs N"),
    ("lr", "give --learning_rate (the base rate for a global batch of 256)"),
    ("with_tracking", "give --report_to tensorboard, wandb, all or none (default: tensorboard)"),
    ("logging_dir", "logs and trackers write into --output_dir"),
    ("num_workers", "give --dataloader_num_workers N (the CPU views' workers)"),
    ("use_cpu", "without a GPU it runs on the CPU; to hide GPUs, set CUDA_VISIBLE_DEVICES="),
    ("no_cuda", "without a GPU it runs on the CPU; to hide GPUs, set CUDA_VISIBLE_DEVICES="),
    (
        "train_dir",
        "give --dataset_name <the folder> (an imagefolder, parquet files or a save_to_disk folder)",
    ),
    ("image_column_name", "give --image_column NAME"),
    ("label_column_name", "give --label_column NAME"),
)
# `scripts/pretrain.py`: an optional recipe file first (`configs/*.yaml`), then flags that override it.
PRETRAIN = Command(
    "pretrain.py",
    PRETRAINING_ARGUMENTS,
    "hf_simclr.pretraining.loop:pretrain",
    first_positional="recipe",
    interrupted="the folder keeps its last complete checkpoint: run the same command with --resume_from_checkpoint "
    "latest to continue (before the first checkpoint: the same command starts again).",
    known_elsewhere=ELSEWHERE_FLAGS,
)
