"""The one Dataset class: samples made on demand by a task's maker function.

Training sets draw fresh randomness for every access from torch's generator (so a seeded run
repeats exactly and never runs out of distinct samples); evaluation sets derive item i from
(seed, i) alone, so they are the same fixed set in every run, optionally kept in memory.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from indexnas.errors import UserError
from indexnas.tasks.data.crops import AUGMENTATIONS, augment

# maker(index, rng) -> arrays: float32 CxHxW images, int64 HxW label maps.
Maker = Callable[[int, np.random.Generator], dict[str, np.ndarray]]


class SampleDataset(Dataset):
    """Samples made by `maker`; `seed=None` means fresh training samples, an int means a fixed set."""

    def __init__(
        self,
        maker: Maker,
        length: int,
        *,
        seed: int | None,
        augmentation: str = "none",
        keep_in_memory: bool = False,
        same_size: bool = True,
        num_classes: int | None = None,
        description: str = "",
    ) -> None:
        if augmentation not in AUGMENTATIONS:
            raise UserError(f"unknown augmentation {augmentation!r}", f"use one of: {', '.join(AUGMENTATIONS)}")
        self.maker = maker
        self.length = length
        self.seed = seed
        self.augmentation = augmentation
        self.same_size = same_size  # False: items differ in size, evaluate them one at a time
        self.num_classes = num_classes  # segmentation only: number of label classes
        self.description = description
        self._memory: dict[int, dict[str, torch.Tensor]] | None = {} if keep_in_memory else None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        if self._memory is not None and index in self._memory:
            return self._memory[index]
        rng = self._generator(index)
        arrays = augment(self.maker(index, rng), self.augmentation, rng)
        sample = {name: torch.from_numpy(np.require(array, requirements=("C", "W"))) for name, array in arrays.items()}
        if self._memory is not None:
            self._memory[index] = sample
        return sample

    def _generator(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        return np.random.default_rng((self.seed, index))

    def __repr__(self) -> str:
        kind = "training (fresh samples)" if self.seed is None else f"fixed (seed {self.seed})"
        return f"SampleDataset({self.description}; {self.length} samples, {kind})"
