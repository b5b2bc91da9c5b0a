"""What every task's dataset builder shares: checked crop options, crop makers over source images, and the
(train, val) SampleDataset pair, so that a task module keeps only its layout, its reader and its sample dict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexnas.errors import UserError
from indexnas.tasks.data import checks, folders
from indexnas.tasks.data.crops import cut, eval_length, eval_window, random_window
from indexnas.tasks.data.dataset import Maker, SampleDataset
from indexnas.tasks.data.validation import ValidationSet

# Side of the larger training crops (the training set's `recalibration` set) of the built-in data: for the demo's
# dncnn_segnet, 96 to 256 gave the same whole-image PSNR within 0.3 dB, 40 (the patch) did not (BENCHMARKS.md).
RECALIBRATION_SIZE = 128
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
    when None), the side of the larger training crops (`recalibration_side`) and the `seed` of the evaluation set."""

    patch: int
    eval_side: int
    recalibration_side: int
    seed: int

    @classmethod
    def checked(cls, patch: object, eval_size: object, seed: object, recalibration_size: object = None) -> GeneratedOptions:
        """The options after checks.require_int/optional_size; a bad value raises UserError naming it."""
        patch = checks.require_int("patch", patch, 8)
        eval_side = checks.optional_size("eval_size", eval_size, 8) or patch
        return cls(patch, eval_side, recalibration_side(recalibration_size, patch), checks.require_int("seed", seed, 0))


def recalibration_side(requested: object, patch: int) -> int:
    """Side of the larger training crops: `requested` (larger than the patch), else max(RECALIBRATION_SIZE, 2 * patch)."""
    if requested is None:
        return max(RECALIBRATION_SIZE, 2 * patch)
    side = checks.require_int("recalibration_size", requested, 8)
    if side <= patch:
        raise UserError(f"recalibration_size must be larger than the training patch ({patch}), got {side}",
                        f"pass recalibration_size={max(RECALIBRATION_SIZE, 2 * patch)} or leave it out")
    return side


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
    training: Callable[[int], Maker],
    evaluation: Callable[[CropOptions], Maker],
    val_sources: int,
    options: CropOptions,
    train_size: object,
    val_count: object,
    *,
    augmentation: str,
    what: str,
    recalibration_side: int | None,
    whole_images: object = True,
    num_classes: int | None = None,
    keep_in_memory: bool = False,
    patches: str = "crops",
    whole: str = "whole images",
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """(train, val) over source images: `train_size` fresh training patches (`training(side)` makes side x side
    ones), and a fixed evaluation set (`evaluation(options)`) of one item per source (whole images, differing
    in size) or `val_count` eval_size crops, followed by the whole images when `whole_images`; see with_parts."""
    if not isinstance(whole_images, bool):
        raise UserError(f"whole_images must be True or False, got {whole_images!r}", "use whole_images=True")
    train = _training_set(
        training(options.patch), train_size, augmentation, num_classes, f"{what}, {options.patch}x{options.patch} {patches}"
    )

    def evaluation_set(eval_options: CropOptions) -> SampleDataset:
        eval_size = eval_options.eval_size
        return SampleDataset(
            evaluation(eval_options),
            eval_length(val_sources, eval_size, checks.require_int("val_count", val_count, 1)),
            seed=eval_options.seed,
            keep_in_memory=keep_in_memory,
            same_size=eval_size is not None,
            num_classes=num_classes,
            description=f"{what}, " + (whole if eval_size is None else f"{eval_size}x{eval_size} crops"),
        )

    whole_set = None
    if whole_images and options.eval_size is not None:
        whole_set = evaluation_set(dataclasses.replace(options, eval_size=None))
    recalibration = None if recalibration_side is None else training(recalibration_side)
    return with_parts(train, evaluation_set(options), recalibration, recalibration_side, whole_set, what)


def generated_datasets(
    sampler: Callable[[str, int], Maker],
    options: GeneratedOptions,
    train_size: object,
    val_count: object,
    *,
    augmentation: str,
    what: str,
    held_out: str,
    whole: tuple[Maker, int, str] | None,
    num_classes: int | None = None,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """(train, val) of generated samples: `train_size` fresh sampler("train", patch) samples, and `val_count`
    fixed sampler("val", eval_side) samples kept in memory (`held_out` says what they hold out), followed by
    the `whole` part (maker, count, description) of larger held-out samples; see with_parts."""
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
    whole_set = None
    if whole is not None:
        maker, count, description = whole
        whole_set = SampleDataset(maker, checks.require_int("whole_count", count, 1), seed=options.seed,
                                  keep_in_memory=True, same_size=False, num_classes=num_classes,
                                  description=f"{what}, {description}")
    side = options.recalibration_side
    return with_parts(train, val, sampler("train", side), side, whole_set, what)


def whole_part(sampler: Callable[[str, int], Maker], side: int | None, count: int,
               held_out: str) -> tuple[Maker, int, str] | None:
    """generated_datasets' `whole` part: `count` fixed sampler("val", side) samples, or None when side is None."""
    if side is None:
        return None
    side = checks.require_int("whole_size", side, 8)
    return sampler("val", side), count, f"{side}x{side} {held_out}"


def with_parts(
    train: SampleDataset,
    crops: SampleDataset,
    recalibration: Maker | None,
    side: int | None,
    whole: SampleDataset | None,
    what: str,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """What every task's data gets, one mechanism for all: the training set's `recalibration` set (fresh side x
    side samples of `recalibration`, drawn like the training patches; tasks.train trains its final phase and
    re-estimates BatchNorm statistics on them) and, with `whole`, a validation set of two parts, "crops" (the
    score) then "whole" (metrics ``whole_*``). Why: statistics of small patches do not hold for whole images
    (BENCHMARKS.md, "A score you can trust")."""
    if recalibration is not None and side is not None:
        train.recalibration = SampleDataset(recalibration, train.length, seed=None, augmentation=train.augmentation,
                                            num_classes=train.num_classes, description=f"{what}, {side}x{side} crops")
    if whole is None:
        return train, crops
    return train, ValidationSet({"crops": crops, "whole": whole})


def folder_recalibration_side(requested: object, patch: int, train_images: list[Path]) -> int | None:
    """Side of a folder dataset's recalibration crops: `requested`, else max(RECALIBRATION_SIZE, 2 * patch) cut
    to the smallest training image; None (no recalibration crops) when that is no larger than the patch."""
    if requested is not None:
        side = recalibration_side(requested, patch)
        folders.check_min_size(train_images, side, "recalibration crop")
        return side
    side = min(recalibration_side(None, patch), *(folders.smallest_side(path) for path in train_images))
    return side if side > patch else None


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
