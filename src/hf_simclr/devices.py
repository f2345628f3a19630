"""The hardware a run uses: which device by default, its name for the records, its mixed precision."""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_description(num_processes: int = 1, device: torch.device | str | None = None) -> str:
    """The hardware of a run, for its records and the model card: the GPU's name (`"2 x NVIDIA H100 80GB
    HBM3"` for two processes) or `"CPU"` (also when `device` is the CPU on a machine with a GPU)."""
    if not torch.cuda.is_available() or (device is not None and torch.device(device).type != "cuda"):
        return "CPU"
    name = torch.cuda.get_device_name(device)
    return name if num_processes == 1 else f"{num_processes} x {name}"


def resolve_mixed_precision(value: str) -> str:
    """`--mixed_precision auto`: bf16 on a GPU that supports it, else none; other values as given (fp16 without
    a CUDA GPU is refused by its declared condition before: `PretrainingArguments.APPLIES`)."""
    if value != "auto":
        return value
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
