"""Denoising data (the DnCNN protocol): clean grey images, additive Gaussian noise of sigma on the 0-255 scale.

Training samples are `patch` x `patch` crops taken at a random scale from `scales`, with a random
flip/rotation and fresh unclipped noise every time; the training set's `recalibration` set holds
`recalibration_size` crops at scale 1 (default 128 for 40x40 patches), on which the last phase of training
runs and BatchNorm statistics are re-estimated (tasks.data.builders.with_parts, tasks.train.fit: statistics
of 40x40 patches do not hold for whole images).
Evaluation items are fixed noisy/clean pairs, their noise drawn from (seed, item) so every trial
sees the same draws: whole held-out images (cropped to a multiple of `multiple` so down/up-sampling
models fit) or `val_count` crops of `eval_size`, followed, with `whole_images`, by the whole images
as a second part (tasks.data.validation.ValidationSet: metrics ``whole_psnr``, ``whole_ssim``).
Samples: {"noisy": 1xHxW, "clean": 1xHxW}, float32, clean in [0, 1].
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexnas.errors import UserError
from indexnas.tasks.data import folders
from indexnas.tasks.data.builders import CropOptions, crop_datasets, evaluation_crops, recalibration_side
from indexnas.tasks.data.crops import scaled_crop
from indexnas.tasks.data.dataset import SampleDataset
from indexnas.tasks.data.validation import ValidationSet
from indexnas.tasks.data.images import as_grey, chw, read_cached, skimage_photo, to_unit

# Built-in split of the shipped photographs; `camera` is also in Set12.
TRAIN_PHOTOS = (
    "astronaut",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "moon",
    "brick",
    "grass",
    "gravel",
    "cell",
    "clock",
    "page",
    "text",
)
VAL_PHOTOS = ("camera", "coins", "coffee")
DNCNN_SCALES = (1.0, 0.9, 0.8, 0.7)

LAYOUT = "ROOT/*.png (clean images, e.g. BSD400); val_root=BSD68 or Set12, else a split"


def builtin(
    sigma: float = 25,
    patch: int = 40,
    eval_size: int | None = 96,
    val_count: int = 240,
    multiple: int = 16,
    scales: Sequence[float] = DNCNN_SCALES,
    train_size: int = 4096,
    seed: int = 0,
    whole_images: bool = True,
    recalibration_size: int | None = None,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """Noisy/clean pairs from 12 shipped photographs (train) and camera, coins, coffee (val): by default 240
    crops of 96x96 (the score: enough items for a standard error) and the three whole photographs."""
    std, scales = _noise(sigma, scales)
    options = CropOptions.checked(patch, eval_size, multiple, seed)
    return _datasets(
        TRAIN_PHOTOS,
        VAL_PHOTOS,
        _photo,
        std=std,
        scales=scales,
        options=options,
        train_size=train_size,
        val_count=val_count,
        keep_in_memory=True,
        whole_images=whole_images,
        recalibration_size=recalibration_size,
        what=f"denoise sigma={sigma:g} from built-in photographs",
    )


def from_folder(
    root: str | Path,
    val_root: str | Path | None = None,
    val_fraction: float = 0.2,
    sigma: float = 25,
    patch: int = 40,
    eval_size: int | None = None,
    val_count: int = 68,
    multiple: int = 16,
    scales: Sequence[float] = DNCNN_SCALES,
    train_size: int = 4096,
    seed: int = 0,
    whole_images: bool = True,
    recalibration_size: int | None = None,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """A folder of clean images (e.g. BSD400) for training; val_root (e.g. BSD68, Set12) or a split for val."""
    std, scales = _noise(sigma, scales)
    options = CropOptions.checked(patch, eval_size, multiple, seed)
    train_files, val_files = folders.train_val_split(
        _images(root, "training images"),
        val_root,
        lambda folder: _images(folder, "validation images"),
        val_fraction,
        options.seed,
        "images",
    )
    options.check_fits(train_files, val_files)
    return _datasets(
        train_files,
        val_files,
        _grey_file,
        std=std,
        scales=scales,
        options=options,
        train_size=train_size,
        val_count=val_count,
        keep_in_memory=False,
        whole_images=whole_images,
        recalibration_size=recalibration_size,
        what=f"denoise sigma={sigma:g} from folder {root}",
    )


def _noise(sigma: object, scales: object) -> tuple[np.float32, tuple[float, ...]]:
    """Checked noise options: sigma (0-255 scale) as the std on the [0, 1] scale, and the training crop scales."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma <= 255:
        raise UserError(
            f"sigma must be a noise level in (0, 255] on the 0-255 scale, got {sigma!r}", "use 15, 25 or 50"
        )
    scales = tuple(scales)  # type: ignore[arg-type]
    if not scales or not all(isinstance(s, (int, float)) and 0 < s <= 1 for s in scales):
        raise UserError(f"scales must be numbers in (0, 1], got {scales!r}", "use e.g. (1.0, 0.9, 0.8, 0.7)")
    return np.float32(sigma / 255.0), scales


def _datasets(
    train_items: Sequence,
    val_items: Sequence,
    read: Callable[[Any], np.ndarray],
    *,
    std: np.float32,
    scales: tuple[float, ...],
    options: CropOptions,
    train_size: object,
    val_count: object,
    keep_in_memory: bool,
    whole_images: object,
    recalibration_size: object,
    what: str,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """Training and evaluation datasets over two sets of clean images (one mechanism for built-in and folders;
    `read(item)` gives an HxW float32 image in [0, 1])."""

    def training(side: int) -> Callable[[int, np.random.Generator], dict]:
        crop_scales = scales if side == options.patch else (1.0,)  # the larger crops: at scale 1, as evaluated

        def sample(_index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
            image = read(train_items[int(rng.integers(len(train_items)))])
            return _pair(scaled_crop(image, side, float(rng.choice(crop_scales)), rng), std, rng)

        return sample

    return crop_datasets(
        training,
        lambda eval_options: evaluation_crops(val_items, lambda item: (read(item),),
                                              lambda clean, rng: _pair(clean, std, rng), eval_options),
        len(val_items),
        options,
        train_size=train_size,
        val_count=val_count,
        augmentation="dihedral",
        what=what,
        recalibration_side=recalibration_side(recalibration_size, options.patch),
        whole_images=whole_images,
        keep_in_memory=keep_in_memory,
        patches="patches",
    )


def _pair(clean: np.ndarray, std: np.float32, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Noisy/clean pair: clean plus unclipped N(0, std^2) noise."""
    noisy = clean + rng.standard_normal(clean.shape, dtype=np.float32) * std
    return {"noisy": chw(noisy), "clean": chw(clean)}


@functools.cache
def _photo(name: str) -> np.ndarray:
    """A built-in photograph as a grey float image, cached."""
    image = as_grey(to_unit(skimage_photo(name)))
    image.setflags(write=False)
    return image


def _images(root: str | Path, what: str) -> list[Path]:
    """The image files of a folder of clean images (`what`: training or validation images, for errors)."""
    return folders.list_files(folders.existing_folder(root, what, LAYOUT), what)


def _grey_file(path: Path) -> np.ndarray:
    """A grey float image from disk (colour files are converted to luminance)."""
    return as_grey(to_unit(read_cached(path)))
