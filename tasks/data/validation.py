"""A validation set made of named parts scored separately (e.g. many crops and the whole held-out images).

`tasks.train.evaluate` scores each part on its own: the first part's metrics keep their names (the
study's score), the others are prefixed with the part's name (``whole_psnr``). Indexing runs over the
parts one after the other, so code that only needs samples (a report's example input) still works.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.data import Dataset

from indexnas.errors import UserError


class ValidationSet(Dataset):
    """Named fixed evaluation sets; the first one is the primary score."""

    same_size = False  # parts may differ in size: only each part is batched

    def __init__(self, parts: Mapping[str, Dataset]) -> None:
        if not parts or any(len(part) == 0 for part in parts.values()):
            raise UserError("a validation set needs at least one part, none of them empty",
                            "give every part at least one sample")
        self.parts = dict(parts)
        self.num_classes = getattr(next(iter(self.parts.values())), "num_classes", None)
        self.description = "; ".join(f"{name}: {getattr(part, 'description', '') or len(part)}"
                                     for name, part in self.parts.items())

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts.values())

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        for part in self.parts.values():
            if index < len(part):
                return part[index]
            index -= len(part)
        raise AssertionError("unreachable")

    def __repr__(self) -> str:
        return f"ValidationSet({self.description})"
