"""A built-in task's checks once its host and data are built, before the first training step: the memory
one step needs, and data the task's metrics cannot be computed on."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from indexnas.errors import UserError
from indexnas.search.settings import SearchSettings

# Bytes a training step holds per activation value: float32 forward outputs kept for backward, and
# their gradients. Optimiser state per parameter: weights, gradients and Adam's two moments.
BYTES_PER_ACTIVATION = 2 * 4
BYTES_PER_PARAMETER = 4 * 4
CHECKED_SAMPLES = 16  # samples of each split looked at for non-finite values (about 0.3 s a split)


def check_training(settings: SearchSettings, task: Any, host: nn.Module, example: torch.Tensor,
                   train_set: Any, val_set: Any) -> None:
    """Refuse a training step that cannot fit in memory, and data the task's metrics cannot use."""
    check_memory(settings, host, example)
    check_data(task, train_set, val_set)


def step_memory(host: nn.Module, example: torch.Tensor, batch_size: int, patch: int) -> int:
    """Estimated bytes of one training step: the host's activations at ``batch_size`` x ``patch`` x ``patch``
    (measured on one example input and scaled by area) plus its parameters with Adam's state."""
    values = 0

    def count(_module: nn.Module, _inputs: tuple, output: Any) -> None:
        nonlocal values
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        values += sum(o.numel() for o in outputs if isinstance(o, torch.Tensor) and o.is_floating_point())

    leaves = [m for m in host.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    was_training = host.training
    try:
        host.eval()
        with torch.no_grad():
            host(example[:1])
    finally:
        host.train(was_training)
        for handle in handles:
            handle.remove()
    area = example.shape[-2] * example.shape[-1]
    activations = values * batch_size * patch * patch / area * BYTES_PER_ACTIVATION
    return int(activations + sum(p.numel() for p in host.parameters()) * BYTES_PER_PARAMETER)


def available_memory(device: str) -> int | None:
    """Free bytes on the device training will use (GPU memory, else the system's available memory)."""
    if device.startswith("cuda"):
        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(settings: SearchSettings, host: nn.Module, example: torch.Tensor) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    free = available_memory(device)
    if free is None:
        return
    needed = step_memory(host, example, settings.batch_size, settings.patch)
    if needed > free:
        fits = max(1, int(settings.patch * (free / needed) ** 0.5))
        raise UserError(f"a training step at --batch-size {settings.batch_size} and --patch {settings.patch} needs "
                        f"about {needed / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB of {device} memory "
                        "available", f"lower --patch (about {fits} fits at this batch size) or --batch-size")


def check_data(task: Any, train_set: Any, val_set: Any) -> None:
    """NaN or infinite values in inputs or targets, or depth maps without a valid pixel, named before training."""
    for part, dataset in (("training", train_set), ("validation", val_set)):
        valid_depth = 0
        count = min(len(dataset), CHECKED_SAMPLES)
        for index in range(count):
            sample = dataset[index]
            inputs = task.model_inputs(default_collate([sample]))
            where = f"sample {index} of the {part} data ({getattr(dataset, 'description', '') or task.name})"
            if not torch.isfinite(inputs).all():
                raise UserError(f"{where}: the input images hold NaN or infinite values",
                                "fix or drop those images (the model cannot learn from them)")
            for key, value in sample.items():
                if key == "depth":
                    valid_depth += bool((torch.isfinite(value) & (value > 0)).any())
                elif isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
                    raise UserError(f"{where}: its {key!r} holds NaN or infinite values", "fix or drop those samples")
        if "depth" in sample and count and not valid_depth:
            raise UserError(f"none of the {count} {part} depth maps looked at has a valid pixel (depth > 0 and "
                            "finite; 0, inf and NaN mark invalid pixels), so the depth metrics cannot be computed",
                            "check the depth files: 16-bit PNG in millimetres, or .npy in metres")
