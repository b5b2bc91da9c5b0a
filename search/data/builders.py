"""What every task's dataset builder shares: checked crop options, crop makers over source images, and the
(train, val) SampleDataset pair, so that a task module keeps only its layout, its reader and its sample dict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexnas.search.data import checks, folders
from indexnas.search.data.crops import cut, eval_length, eval_window, random_window
from indexnas.search.data.dataset import Maker, SampleDataset

# item -> arrays of one source, all of the same height and width; the first one's shape places the window.
Reader = Callable[[Any], tuple[np.ndarray, ...]]
# (*crops, rng) -> the sample's arrays, from the same window cut out of every array a Reader returned.
Finisher = Callable[..., dict[str, np.ndarray]]


@dataclass(frozen=True)
class CropOptions:
    """Checked sizes of a crop-based builder: the training `patch`, the evaluation `eval_size` (None: whole
    images trimmed to a multiple of `multiple`), and the `seed` of the split and of the evaluation set."""

    patch: int
    eval_size: int | None
    multiple: int
    seed: int

    @classmethod
    def checked(cls, patch: object, eval_size: object, multiple: object, seed: object) -> CropOptions:
        """The options after checks.require_int/optional_size; a bad value raises UserError naming it."""
        return cls(
            checks.require_int("patch", patch, 8),
            checks.optional_size("eval_size", eval_size, 8),
            checks.require_int("multiple", multiple, 1),
            checks.require_int("seed", seed, 0),
        )

    def check_fits(self, train_images: list[Path], val_images: list[Path]) -> None:
        """Every training image must hold a patch, every evaluation image an evaluation crop (or `multiple`)."""
        folders.check_min_size(train_images, self.patch, "training patch")
        folders.check_min_size(val_images, self.eval_size or self.multiple, "evaluation crop")


@dataclass(frozen=True)
class GeneratedOptions:
    """Checked sizes of a generated (built-in) dataset: training `patch`, evaluation side (eval_size, or patch
    when None) and the `seed` of the evaluation set."""

    patch: int
    eval_side: int
    seed: int

    @classmethod
    def checked(cls, patch: object, eval_size: object, seed: object) -> GeneratedOptions:
        """The options after checks.require_int/optional_size; a bad value raises UserError naming it."""
        patch = checks.require_int("patch", patch, 8)
        eval_side = checks.optional_size("eval_size", eval_size, 8) or patch
        return cls(patch, eval_side, checks.require_int("seed", seed, 0))


def training_crops(items: Sequence[Any], read: Reader, finish: Finisher, side: int) -> Maker:
    """Training maker: a random item, one random side x side window cut from all its arrays, finish(*crops, rng)."""

    def make(_index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        arrays = read(items[int(rng.integers(len(items)))])
        window = random_window(arrays[0].shape, side, rng)
        return finish(*(cut(array, window) for array in arrays), rng)

    return make


def evaluation_crops(items: Sequence[Any], read: Reader, finish: Finisher, options: CropOptions) -> Maker:
    """Evaluation maker: item i % len(items), cut to its eval_window (see crops.eval_window), finish(*crops, rng)."""

    def make(index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        arrays = read(items[index % len(items)])
        window = eval_window(arrays[0].shape, options.eval_size, options.multiple, rng)
        return finish(*(cut(array, window) for array in arrays), rng)

    return make


def crop_datasets(
    train_maker: Maker,
    val_maker: Maker,
    val_sources: int,
    options: CropOptions,
    train_size: object,
    val_count: object,
    *,
    augmentation: str,
    what: str,
    num_classes: int | None = None,
    keep_in_memory: bool = False,
    patches: str = "crops",
    whole: str = "whole images",
) -> tuple[SampleDataset, SampleDataset]:
    """(train, val) over source images: `train_size` fresh training patches, and a fixed evaluation set of one
    item per source (whole images, differing in size) or `val_count` eval_size crops."""
    train = _training_set(
        train_maker, train_size, augmentation, num_classes, f"{what}, {options.patch}x{options.patch} {patches}"
    )
    eval_size = options.eval_size
    val = SampleDataset(
        val_maker,
        eval_length(val_sources, eval_size, checks.require_int("val_count", val_count, 1)),
        seed=options.seed,
        keep_in_memory=keep_in_memory,
        same_size=eval_size is not None,
        num_classes=num_classes,
        description=f"{what}, " + (whole if eval_size is None else f"{eval_size}x{eval_size} crops"),
    )
    return train, val


def generated_datasets(
    sampler: Callable[[str, int], Maker],
    options: GeneratedOptions,
    train_size: object,
    val_count: object,
    *,
    augmentation: str,
    what: str,
    held_out: str,
    num_classes: int | None = None,
) -> tuple[SampleDataset, SampleDataset]:
    """(train, val) of generated samples: `train_size` fresh sampler("train", patch) samples, and `val_count`
    fixed sampler("val", eval_side) samples kept in memory (`held_out` says what they hold out)."""
    patch, eval_side = options.patch, options.eval_side
    train = _training_set(sampler("train", patch), train_size, augmentation, num_classes, f"{what}, {patch}x{patch}")
    val = SampleDataset(
        sampler("val", eval_side),
        checks.require_int("val_count", val_count, 1),
        seed=options.seed,
        keep_in_memory=True,
        num_classes=num_classes,
        description=f"{what}, {eval_side}x{eval_side} {held_out}",
    )
    return train, val


def _training_set(
    maker: Maker, train_size: object, augmentation: str, num_classes: int | None, description: str
) -> SampleDataset:
    """`train_size` (checked) fresh samples an epoch, drawn from torch's generator."""
    return SampleDataset(
        maker,
        checks.require_int("train_size", train_size, 1),
        seed=None,
        augmentation=augmentation,
        num_classes=num_classes,
        description=description,
    )
