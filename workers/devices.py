"""Where a worker computes: named in reports so that numbers can be compared fairly."""

from __future__ import annotations


def describe_device(device: str) -> str:
    """`cuda:0 (NVIDIA H100 ...)` or `cpu`; CUDA is touched only here, inside the task."""
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return device
