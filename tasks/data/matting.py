"""Matting data (the Composition-1k protocol): I = alpha * F + (1 - alpha) * B, so alpha is exact.

Built-in foregrounds are real objects cut from shipped photographs: the coins of `coins` and the
ink strokes of `text` and `page`, segmented by local thresholding. Their binary masks become soft
alphas through a linear ramp of the signed distance d from the pixel centre to the mask edge,
alpha = clip(0.5 + d / w, 0, 1), with a random ramp width w per sample (1.5-6 px by default; thin
strokes never reach alpha 1, like hair). Crops are centred on a random edge pixel. F is the photograph,
extended outwards by nearest-pixel colour so that soft edges mix object colour, not the photo's
surroundings. Backgrounds are other real photographs (train: astronaut, coffee, rocket, chelsea;
val: immunohistochemistry, retina). Training crops come from the left 70% of each foreground
photograph, evaluation crops from the right 30%. Trimaps erode both known regions by a random radius.
Samples: {"image": 3xHxW, "trimap": 1xHxW (0 background, 0.5 unknown, 1 foreground), "alpha": 1xHxW,
"fg": 3xHxW, "bg": 3xHxW}, float32 in [0, 1].
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from indexnas.errors import UserError
from indexnas.tasks.data import checks, folders
from indexnas.tasks.data.builders import (
    CropOptions,
    GeneratedOptions,
    crop_datasets,
    evaluation_crops,
    folder_recalibration_side,
    generated_datasets,
)
from indexnas.tasks.data.crops import Window, cut, eval_window, random_window, scaled_crop
from indexnas.tasks.data.dataset import SampleDataset
from indexnas.tasks.data.validation import ValidationSet
from indexnas.tasks.data.images import as_grey, as_rgb, chw, read_cached, skimage_photo, to_unit

FOREGROUND_PHOTOS = ("coins", "text", "page")
TRAIN_BACKGROUNDS = ("astronaut", "coffee", "rocket", "chelsea")
VAL_BACKGROUNDS = ("immunohistochemistry", "retina")
TRAIN_SHARE = 0.7  # columns of each foreground photograph used for training
BACKGROUND_SCALES = (0.5, 1.0)
WHOLE_MULTIPLE = 32  # whole held-out strips are trimmed to it, so every zoo host takes them
LAYOUT = "ROOT/fg/NAME.png + ROOT/alpha/NAME.png, and backgrounds in ROOT/bg/"


@dataclass(frozen=True)
class Foreground:
    """A real object: RGB colour extended past its edge, and the signed distance to the edge (+ inside)."""

    colour: np.ndarray
    signed_distance: np.ndarray


def builtin(
    patch: int = 64,
    eval_size: int | None = 64,
    val_count: int = 240,
    ramp: Sequence[float] = (1.5, 6.0),
    trimap_radius: Sequence[int] = (2, 8),
    train_size: int = 4096,
    seed: int = 0,
    whole_images: bool = True,
    recalibration_size: int | None = None,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """Soft-edged real objects over real backgrounds; `eval_size` None means evaluation crops of `patch`.
    Validation: `val_count` crops (the score), then with `whole_images` each whole held-out foreground strip
    (trimmed to a multiple of WHOLE_MULTIPLE) over each held-out background (metrics ``whole_*``)."""
    options = GeneratedOptions.checked(patch, eval_size, seed, recalibration_size)
    ramp = checks.require_range("ramp", ramp, 1.0, 64.0)
    radius = checks.require_range("trimap_radius", trimap_radius, 0, 64)
    if not isinstance(whole_images, bool):
        raise UserError(f"whole_images must be True or False, got {whole_images!r}", "use whole_images=True")
    narrowest = min(min(f.colour.shape[:2]) for f in _foregrounds("val"))
    if max(options.patch, options.eval_side) > narrowest:
        raise UserError(
            f"built-in matting crops must be at most {narrowest} pixels (the held-out foreground strips), "
            f"got patch={patch}, eval_size={eval_size}",
            f"use patch and eval_size <= {narrowest}",
        )
    narrowest_train = min(min(f.colour.shape[:2]) for f in _foregrounds("train"))
    if options.recalibration_side > narrowest_train:
        raise UserError(
            f"built-in matting recalibration crops must be at most {narrowest_train} pixels (the training foreground "
            f"strips), got {options.recalibration_side}",
            f"pass recalibration_size <= {narrowest_train} (and larger than the patch)",
        )

    def sampler(part: str, side: int | None):
        """side x side crops around a random edge of a random object; None: the whole strip of object i."""
        backgrounds = TRAIN_BACKGROUNDS if part == "train" else VAL_BACKGROUNDS

        def sample(index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
            sources = _foregrounds(part)
            source = sources[index % len(sources) if side is None else int(rng.integers(len(sources)))]
            width = float(rng.uniform(*ramp))
            if side is None:
                window = eval_window(source.signed_distance.shape, None, WHOLE_MULTIPLE, rng)
            else:
                window = _window_around(np.abs(source.signed_distance) <= width / 2, side, rng)
            alpha = _soft_alpha(cut(source.signed_distance, window), width)
            if side is None:
                background = backgrounds[index // len(sources) % len(backgrounds)]
                bg = _covering_crop(skimage_photo(background), alpha.shape, rng)
            else:
                background = as_rgb(skimage_photo(backgrounds[int(rng.integers(len(backgrounds)))]))
                bg = scaled_crop(background, side, float(rng.uniform(*BACKGROUND_SCALES)), rng)
            return _composite(alpha, to_unit(cut(source.colour, window)), bg, _radius(radius, rng))

        return sample

    whole = (sampler("val", None), len(FOREGROUND_PHOTOS) * len(VAL_BACKGROUNDS),
             f"whole held-out foreground strips (trimmed to multiples of {WHOLE_MULTIPLE})")
    return generated_datasets(
        sampler,
        options,
        train_size,
        val_count,
        augmentation="dihedral",
        what="matting soft-edged coins/text/page over real photographs",
        held_out="held-out objects and backgrounds",
        whole=whole if whole_images else None,
    )


def from_folder(
    root: str | Path,
    val_root: str | Path | None = None,
    val_fraction: float = 0.2,
    patch: int = 320,
    eval_size: int | None = None,
    val_count: int = 100,
    multiple: int = 32,
    trimap_radius: Sequence[int] = (5, 25),
    train_size: int = 4096,
    seed: int = 0,
    whole_images: bool = True,
    recalibration_size: int | None = None,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """Composition-1k style `root/fg/*`, `root/alpha/*` (same names) and `root/bg/*`.

    Training composites a random foreground crop (centred on a random pixel with 0 < alpha < 1)
    over a random background crop; evaluation item i
    is foreground i (whole, trimmed to `multiple`, or an `eval_size` crop) over a background picked
    by (seed, i). Trimaps are always generated by erosion (trimap files are not read). Without
    val_root, foregrounds and backgrounds are each split by val_fraction.
    """
    options = CropOptions.checked(patch, eval_size, multiple, seed)
    radius = checks.require_range("trimap_radius", trimap_radius, 0, 512)
    train_objects, val_objects = folders.train_val_split(
        _objects(root), val_root, _objects, val_fraction, options.seed, "foregrounds"
    )
    train_backgrounds, val_backgrounds = folders.train_val_split(
        _backgrounds(root), val_root, _backgrounds, val_fraction, options.seed, "backgrounds"
    )
    options.check_fits([fg for fg, _ in train_objects], [fg for fg, _ in val_objects])

    def training(side: int):
        def sample(_index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
            colour, alpha = _read_object(train_objects[int(rng.integers(len(train_objects)))])
            window = _window_around((alpha > 0) & (alpha < 1), side, rng)
            return _over_background(cut(colour, window), cut(alpha, window), train_backgrounds, radius, rng)

        return sample

    def val_finish(colour: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return _over_background(colour, alpha, val_backgrounds, radius, rng)

    return crop_datasets(
        training,
        lambda eval_options: evaluation_crops(val_objects, _read_object, val_finish, eval_options),
        len(val_objects),
        options,
        train_size=train_size,
        val_count=val_count,
        augmentation="hflip",
        what=f"matting folder {root}",
        recalibration_side=folder_recalibration_side(recalibration_size, options.patch, [fg for fg, _ in train_objects]),
        whole_images=whole_images,
        whole="whole foregrounds",
    )


def trimap_from_alpha(alpha: np.ndarray, radius: float) -> np.ndarray:
    """0/0.5/1 trimap: known foreground (alpha == 1) and background (alpha == 0) eroded by `radius` pixels."""
    trimap = np.full(alpha.shape, 0.5, np.float32)
    trimap[_eroded(alpha >= 1.0, radius)] = 1.0
    trimap[_eroded(alpha <= 0.0, radius)] = 0.0
    return trimap


def _eroded(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels farther than `radius` from any pixel outside `mask` (Euclidean erosion)."""
    if mask.all() or not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(mask) > radius


def _composite(alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray, radius: float) -> dict[str, np.ndarray]:
    """The sample dict for one composite I = alpha * F + (1 - alpha) * B (alpha HxW, F and B HxWx3)."""
    image = alpha[..., None] * fg + (1.0 - alpha[..., None]) * bg
    return {
        "image": chw(image),
        "trimap": chw(trimap_from_alpha(alpha, radius)),
        "alpha": chw(alpha),
        "fg": chw(fg),
        "bg": chw(bg),
    }


def _over_background(
    colour: np.ndarray,
    alpha: np.ndarray,
    backgrounds: list[Path],
    radius: tuple[float, float],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The sample for a foreground crop (RGB, stored dtype) over a covering crop of a random background file."""
    background = read_cached(backgrounds[int(rng.integers(len(backgrounds)))])
    bg = _covering_crop(background, alpha.shape, rng)
    return _composite(alpha, to_unit(colour), bg, _radius(radius, rng))


def _soft_alpha(signed_distance: np.ndarray, width: float) -> np.ndarray:
    return np.clip(0.5 + signed_distance / np.float32(width), 0.0, 1.0).astype(np.float32)


def _window_around(candidates: np.ndarray, side: int, rng: np.random.Generator) -> Window:
    """A side x side window centred (as far as the image allows) on a random True pixel of `candidates`,
    so that crops show the object's edge as in Deep Image Matting; uniform when there is none."""
    rows, cols = np.nonzero(candidates)
    if rows.size == 0:
        return random_window(candidates.shape, side, rng)
    pick = int(rng.integers(rows.size))
    top = int(np.clip(rows[pick] - side // 2, 0, candidates.shape[0] - side))
    left = int(np.clip(cols[pick] - side // 2, 0, candidates.shape[1] - side))
    return Window(top, left, side, side)


def _radius(bounds: tuple[float, float], rng: np.random.Generator) -> float:
    return float(rng.uniform(*bounds))


def _covering_crop(image: np.ndarray, size: int | tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random float RGB crop of `size`, after enlarging the image if it is smaller than that."""
    from skimage.transform import rescale

    height, width = (size, size) if isinstance(size, int) else size
    image = as_rgb(to_unit(image))
    factor = max(height / image.shape[0], width / image.shape[1])
    if factor > 1:
        image = rescale(image, factor * 1.001, order=1, channel_axis=2).astype(np.float32)
    top = int(rng.integers(0, image.shape[0] - height + 1))
    left = int(rng.integers(0, image.shape[1] - width + 1))
    return image[top : top + height, left : left + width]


@functools.cache
def _foregrounds(part: str) -> tuple[Foreground, ...]:
    """The built-in foreground objects, cut to their training (left) or evaluation (right) columns."""
    objects = []
    for name in FOREGROUND_PHOTOS:
        photo = skimage_photo(name)
        mask = _object_mask(name, to_unit(photo))
        inside = ndimage.distance_transform_edt(mask)
        outside, nearest = ndimage.distance_transform_edt(~mask, return_indices=True)
        colour = as_rgb(photo)[nearest[0], nearest[1]]  # outside pixels take the nearest object colour
        split_col = int(photo.shape[1] * TRAIN_SHARE)
        columns = slice(None, split_col) if part == "train" else slice(split_col, None)
        signed = np.where(mask, inside - 0.5, 0.5 - outside).astype(np.float32)  # edge between pixels
        objects.append(Foreground(colour[:, columns], signed[:, columns]))
    return tuple(objects)


def _object_mask(name: str, grey: np.ndarray) -> np.ndarray:
    """Binary object mask of a foreground photograph: bright coins, or dark ink strokes."""
    from skimage.filters import threshold_local
    from skimage.morphology import disk

    if name == "coins":
        mask = grey > threshold_local(grey, 101, offset=-0.03)
        mask = ndimage.binary_opening(mask, structure=disk(2))
        return ndimage.binary_fill_holes(_without_small(mask, 200))
    return _without_small(grey < threshold_local(grey, 35, offset=0.04), 12)


def _without_small(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """The mask without connected components smaller than min_pixels."""
    labels, _count = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]


def _objects(root: str | Path) -> list[tuple[Path, Path]]:
    """(foreground, alpha matte) files of `root/fg` and `root/alpha`, matched by name and size."""
    folder = folders.existing_folder(root, "matting dataset", LAYOUT)
    foregrounds = folders.list_files(folders.existing_folder(folder / "fg", "foregrounds", LAYOUT), "foregrounds")
    alphas = folders.list_files(folders.existing_folder(folder / "alpha", "alpha mattes", LAYOUT), "alpha mattes")
    objects = folders.pair_by_stem(foregrounds, alphas, ("foreground", "alpha matte"))
    folders.check_same_size(objects)
    return objects


def _backgrounds(root: str | Path) -> list[Path]:
    """The background files of `root/bg`."""
    folder = folders.existing_folder(root, "matting dataset", LAYOUT)
    return folders.list_files(folders.existing_folder(folder / "bg", "backgrounds", LAYOUT), "backgrounds")


def _read_object(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
    """Foreground colour (RGB, stored dtype) and alpha (float HxW in [0, 1]) of one object."""
    return as_rgb(read_cached(pair[0])), as_grey(to_unit(read_cached(pair[1])))
