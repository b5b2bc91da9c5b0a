"""Windows, rescaled crops and flips/rotations, applied identically to every array of one sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from indexnas.tasks.data.images import to_unit

AUGMENTATIONS: tuple[str, ...] = ("none", "hflip", "dihedral")


@dataclass(frozen=True)
class Window:
    """A rectangle of a source image: top-left corner and size in source pixels."""

    top: int
    left: int
    height: int
    width: int


def random_window(shape: tuple[int, ...], side: int, rng: np.random.Generator) -> Window:
    """A side x side window at a uniformly random position inside an image of `shape` (H, W, ...)."""
    height, width = shape[:2]
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    return Window(top, left, side, side)


def centre_window(shape: tuple[int, ...], side: int | None) -> Window:
    """The central side x side window, or the whole image when side is None."""
    height, width = shape[:2]
    if side is None:
        return Window(0, 0, height, width)
    return Window((height - side) // 2, (width - side) // 2, side, side)


def cut(image: np.ndarray, window: Window) -> np.ndarray:
    """The window's pixels (a view; works for HxW and HxWxC arrays)."""
    return image[window.top : window.top + window.height, window.left : window.left + window.width]


def resized(image: np.ndarray, side: int) -> np.ndarray:
    """A float32 side x side bilinear resampling of an HxW or HxWxC crop (anti-aliased when shrinking)."""
    image = to_unit(image)
    if image.shape[0] == side and image.shape[1] == side:
        return image
    channels_first = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    tensor = torch.from_numpy(np.ascontiguousarray(channels_first))[None]
    out = F.interpolate(tensor, size=(side, side), mode="bilinear", antialias=True, align_corners=False)[0].numpy()
    return out[0] if image.ndim == 2 else np.moveaxis(out, 0, -1)


def scaled_crop(image: np.ndarray, side: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A random side x side float32 crop of the image seen at `scale`: a round(side / scale) window
    (clipped to the image, which then shows it at a larger scale), resized to side."""
    source_side = min(round(side / scale), *image.shape[:2])
    return resized(cut(image, random_window(image.shape, source_side, rng)), side)


def augment(arrays: dict[str, np.ndarray], mode: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Apply one random flip/rotation to the last two axes of every array ("hflip": 2 choices, "dihedral": 8)."""
    if mode == "none":
        return arrays
    if mode == "hflip":
        if rng.integers(2):
            return {name: np.flip(array, axis=-1) for name, array in arrays.items()}
        return arrays
    choice = int(rng.integers(8))
    turned = {name: np.rot90(array, k=choice % 4, axes=(-2, -1)) for name, array in arrays.items()}
    if choice >= 4:
        turned = {name: np.flip(array, axis=-1) for name, array in turned.items()}
    return turned


def eval_window(shape: tuple[int, ...], eval_size: int | None, multiple: int, rng: np.random.Generator) -> Window:
    """Where an evaluation item comes from: a random eval_size crop, or (None) the whole image trimmed
    to a multiple of `multiple` pixels so that models with down/up-sampling return the same size."""
    if eval_size is not None:
        return random_window(shape, eval_size, rng)
    height, width = shape[:2]
    return centre_window((height - height % multiple, width - width % multiple), None)


def eval_length(image_count: int, eval_size: int | None, val_count: int) -> int:
    """Evaluation items: one per image for whole images, else `val_count` crops taken round-robin."""
    return image_count if eval_size is None else val_count
