"""Denoising data (the DnCNN protocol): clean grey images, additive Gaussian noise of sigma on the 0-255 scale.

Training samples are `patch` x `patch` crops taken at a random scale from `scales`, with a random
flip/rotation and fresh unclipped noise every time. Evaluation items are fixed noisy/clean pairs:
whole held-out images (cropped to a multiple of `multiple` so down/up-sampling models fit) or
`val_count` crops of `eval_size`.
Samples: {"noisy": 1xHxW, "clean": 1xHxW}, float32, clean in [0, 1].
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from indexnas.errors import UserError
from search.data import checks, folders
from search.data.crops import cut, eval_length, eval_window, scaled_crop
from search.data.dataset import SampleDataset
from search.data.images import as_grey, chw, read_cached, skimage_photo, to_unit

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
GreyImages = Callable[[int], np.ndarray]  # index -> HxW float32 image in [0, 1]


def builtin(
    sigma: float = 25,
    patch: int = 40,
    eval_size: int | None = 96,
    val_count: int = 12,
    multiple: int = 16,
    scales: Sequence[float] = DNCNN_SCALES,
    train_size: int = 4096,
    seed: int = 0,
) -> tuple[SampleDataset, SampleDataset]:
    """Noisy/clean pairs from 12 shipped photographs (train) and camera, coins, coffee (val)."""
    return _datasets(
        train_images=_photo,
        train_count=len(TRAIN_PHOTOS),
        val_images=lambda i: _photo(len(TRAIN_PHOTOS) + i),
        val_images_count=len(VAL_PHOTOS),
        sigma=sigma,
        patch=patch,
        eval_size=eval_size,
        val_count=val_count,
        multiple=multiple,
        scales=scales,
        train_size=train_size,
        seed=seed,
        keep_in_memory=True,
        origin="built-in photographs",
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
) -> tuple[SampleDataset, SampleDataset]:
    """A folder of clean images (e.g. BSD400) for training; val_root (e.g. BSD68, Set12) or a split for val."""
    train_files = folders.list_files(folders.existing_folder(root, "training images", LAYOUT), "training images")
    if val_root is None:
        train_files, val_files = folders.split(train_files, val_fraction, seed, "images")
    else:
        val_files = folders.list_files(
            folders.existing_folder(val_root, "validation images", LAYOUT), "validation images"
        )
    folders.check_min_size(train_files, patch, "training patch")
    folders.check_min_size(val_files, eval_size or multiple, "evaluation crop")
    return _datasets(
        train_images=lambda i: _grey_file(train_files[i]),
        train_count=len(train_files),
        val_images=lambda i: _grey_file(val_files[i]),
        val_images_count=len(val_files),
        sigma=sigma,
        patch=patch,
        eval_size=eval_size,
        val_count=val_count,
        multiple=multiple,
        scales=scales,
        train_size=train_size,
        seed=seed,
        keep_in_memory=False,
        origin=f"folder {root}",
    )


def _datasets(
    *,
    train_images: GreyImages,
    train_count: int,
    val_images: GreyImages,
    val_images_count: int,
    sigma: float,
    patch: int,
    eval_size: int | None,
    val_count: int,
    multiple: int,
    scales: Sequence[float],
    train_size: int,
    seed: int,
    keep_in_memory: bool,
    origin: str,
) -> tuple[SampleDataset, SampleDataset]:
    """Training and evaluation datasets over two sets of clean images (one mechanism for built-in and folders)."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma <= 255:
        raise UserError(
            f"sigma must be a noise level in (0, 255] on the 0-255 scale, got {sigma!r}", "use 15, 25 or 50"
        )
    patch = checks.require_int("patch", patch, 8)
    eval_size = checks.optional_size("eval_size", eval_size, 8)
    multiple = checks.require_int("multiple", multiple, 1)
    seed = checks.require_int("seed", seed, 0)
    scales = tuple(scales)
    if not scales or not all(isinstance(s, (int, float)) and 0 < s <= 1 for s in scales):
        raise UserError(f"scales must be numbers in (0, 1], got {scales!r}", "use e.g. (1.0, 0.9, 0.8, 0.7)")
    std = np.float32(sigma / 255.0)

    def train_sample(_index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        image = train_images(int(rng.integers(train_count)))
        clean = scaled_crop(image, patch, float(rng.choice(scales)), rng)
        return _pair(clean, std, rng)

    def val_sample(index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        image = val_images(index % val_images_count)
        return _pair(cut(image, eval_window(image.shape, eval_size, multiple, rng)), std, rng)

    length = eval_length(val_images_count, eval_size, checks.require_int("val_count", val_count, 1))
    what = f"denoise sigma={sigma:g} from {origin}"
    train = SampleDataset(
        train_sample,
        checks.require_int("train_size", train_size, 1),
        seed=None,
        augmentation="dihedral",
        description=f"{what}, {patch}x{patch} patches",
    )
    val = SampleDataset(
        val_sample,
        length,
        seed=seed,
        keep_in_memory=keep_in_memory,
        same_size=eval_size is not None,
        description=f"{what}, " + ("whole images" if eval_size is None else f"{eval_size}x{eval_size} crops"),
    )
    return train, val


def _pair(clean: np.ndarray, std: np.float32, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Noisy/clean pair: clean plus unclipped N(0, std^2) noise."""
    noisy = clean + rng.standard_normal(clean.shape, dtype=np.float32) * std
    return {"noisy": chw(noisy), "clean": chw(clean)}


@functools.cache
def _photo(index: int) -> np.ndarray:
    """Built-in photograph `index` of TRAIN_PHOTOS + VAL_PHOTOS as a grey float image, cached."""
    image = as_grey(to_unit(skimage_photo((TRAIN_PHOTOS + VAL_PHOTOS)[index])))
    image.setflags(write=False)
    return image


def _grey_file(path: Path) -> np.ndarray:
    """A grey float image from disk (colour files are converted to luminance)."""
    return as_grey(to_unit(read_cached(path)))
