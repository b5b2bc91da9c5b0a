"""Segmentation data: texture mosaics with exact labels (built-in), or image + label-map folders.

Built-in mosaic: a Voronoi partition of the square into 3-8 cells (random seed points); each cell
gets a random class and is filled with a crop of that class's real texture photograph at a random
scale (0.6-1.4). The label of a pixel is the texture it was painted from, so labels are exact.
Training textures come from the left 75% of each photograph, evaluation textures from the right
25%, so evaluation measures recognising unseen texture pixels.
Samples: {"image": 3xHxW float32 in [0, 1], "label": HxW int64 (255 = ignore)}.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexnas.errors import UserError
from indexnas.tasks.data import checks, folders
from indexnas.tasks.data.builders import (
    CropOptions,
    GeneratedOptions,
    crop_datasets,
    evaluation_crops,
    folder_recalibration_side,
    generated_datasets,
    training_crops,
    whole_part,
)
from indexnas.tasks.data.crops import scaled_crop
from indexnas.tasks.data.dataset import SampleDataset
from indexnas.tasks.data.validation import ValidationSet
from indexnas.tasks.data.images import as_rgb, chw, read_cached, skimage_photo, to_unit
from indexnas.tasks.metrics import IGNORE_INDEX

# Class id = position. Grey textures are repeated into three channels.
TEXTURE_CLASSES: tuple[str, ...] = ("brick", "grass", "gravel", "moon", "immunohistochemistry", "hubble_deep_field")
TRAIN_SHARE = 0.75  # columns of each texture photograph used for training; the rest is for evaluation
TEXTURE_SCALES = (0.6, 1.4)
WHOLE_SIZE, WHOLE_COUNT = 256, 12  # the larger held-out mosaics of the validation's second part
LAYOUT = "ROOT/images/NAME.jpg + ROOT/labels/NAME.png (class ids, 255 = ignore)"


def builtin(
    patch: int = 64,
    eval_size: int | None = 64,
    val_count: int = 240,
    cells: Sequence[int] = (3, 8),
    train_size: int = 4096,
    seed: int = 0,
    whole_size: int | None = WHOLE_SIZE,
    whole_count: int = WHOLE_COUNT,
    recalibration_size: int | None = None,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """Texture mosaics of the six TEXTURE_CLASSES; `eval_size` None means evaluation mosaics of `patch` size.
    Validation: `val_count` mosaics (the score), then `whole_count` of `whole_size` (None: none), ``whole_*``."""
    options = GeneratedOptions.checked(patch, eval_size, seed, recalibration_size)
    low, high = (int(v) for v in checks.require_range("cells", cells, 1, 64))

    def sampler(part: str, side: int):
        def sample(_index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
            return _mosaic(side, int(rng.integers(low, high + 1)), _textures(part), rng)

        return sample

    return generated_datasets(
        sampler,
        options,
        train_size,
        val_count,
        augmentation="dihedral",
        what=f"segment texture mosaics ({len(TEXTURE_CLASSES)} classes)",
        held_out="held-out textures",
        whole=whole_part(sampler, whole_size, whole_count, "held-out textures"),
        num_classes=len(TEXTURE_CLASSES),
    )


def from_folder(
    root: str | Path,
    val_root: str | Path | None = None,
    val_fraction: float = 0.2,
    num_classes: int | None = None,
    patch: int = 64,
    eval_size: int | None = None,
    val_count: int = 64,
    multiple: int = 32,
    train_size: int = 4096,
    seed: int = 0,
    whole_images: bool = True,
    recalibration_size: int | None = None,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """`root/images/*` with `root/labels/*` of the same names (integer class maps, 255 = ignore).

    `num_classes` None reads every label map once to find the largest class id.
    """
    options = CropOptions.checked(patch, eval_size, multiple, seed)
    train_pairs, val_pairs = folders.train_val_split(
        _pairs(root), val_root, _pairs, val_fraction, options.seed, "image/label pairs"
    )
    options.check_fits([image for image, _ in train_pairs], [image for image, _ in val_pairs])
    if num_classes is None:
        num_classes = 1 + max(_largest_label(label) for _, label in train_pairs + val_pairs)
    num_classes = checks.require_int("num_classes", num_classes, 2)

    def read(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
        return _read_pair(pair, num_classes)

    def finish(image: np.ndarray, label: np.ndarray, _rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"image": chw(to_unit(image)), "label": label.astype(np.int64)}

    return crop_datasets(
        lambda side: training_crops(train_pairs, read, finish, side),
        lambda eval_options: evaluation_crops(val_pairs, read, finish, eval_options),
        len(val_pairs),
        options,
        train_size=train_size,
        val_count=val_count,
        augmentation="hflip",
        what=f"segment folder {root} ({num_classes} classes)",
        recalibration_side=folder_recalibration_side(recalibration_size, options.patch,
                                                     [image for image, _ in train_pairs]),
        whole_images=whole_images,
        num_classes=num_classes,
    )


def _mosaic(side: int, cell_count: int, textures: tuple[np.ndarray, ...], rng: np.random.Generator) -> dict:
    """One Voronoi texture mosaic and its exact label map."""
    points = rng.uniform(0, side, size=(cell_count, 2))
    rows, cols = np.mgrid[0:side, 0:side].astype(np.float32)
    distance = (rows[None] - points[:, 0, None, None]) ** 2 + (cols[None] - points[:, 1, None, None]) ** 2
    cell_class = rng.integers(len(textures), size=cell_count)
    label = cell_class[distance.argmin(axis=0)]
    image = np.empty((side, side, 3), np.float32)
    for class_id in np.unique(label):
        texture = scaled_crop(textures[class_id], side, float(rng.uniform(*TEXTURE_SCALES)), rng)
        mask = label == class_id
        image[mask] = texture[mask]
    return {"image": chw(image), "label": label.astype(np.int64)}


@functools.cache
def _textures(part: str) -> tuple[np.ndarray, ...]:
    """The texture photographs as RGB uint8, cut to their training (left) or evaluation (right) part."""
    parts = []
    for name in TEXTURE_CLASSES:
        photo = as_rgb(skimage_photo(name))
        split_col = int(photo.shape[1] * TRAIN_SHARE)
        parts.append(photo[:, :split_col] if part == "train" else photo[:, split_col:])
    return tuple(parts)


def _pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, label map) files of `root/images` and `root/labels`, matched by name and size."""
    folder = folders.existing_folder(root, "segmentation dataset", LAYOUT)
    images = folders.list_files(folders.existing_folder(folder / "images", "images", LAYOUT), "images")
    labels = folders.list_files(folders.existing_folder(folder / "labels", "label maps", LAYOUT), "label maps")
    pairs = folders.pair_by_stem(images, labels, ("image", "label map"))
    folders.check_same_size(pairs)
    return pairs


def _read_label(path: Path) -> np.ndarray:
    label = read_cached(path)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise UserError(
            f"label map {path} is not a single-channel integer image (shape {label.shape}, {label.dtype})",
            "save labels as 8- or 16-bit grey or palette PNGs whose pixel values are class ids",
        )
    return label


def _largest_label(path: Path) -> int:
    values = np.unique(_read_label(path))
    values = values[values != IGNORE_INDEX]
    return int(values.max()) if values.size else 0


def _read_pair(pair: tuple[Path, Path], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Image as RGB (stored dtype) and its label map; class ids >= num_classes raise UserError naming the file."""
    image, label = as_rgb(read_cached(pair[0])), _read_label(pair[1])
    bad = (label >= num_classes) & (label != IGNORE_INDEX)
    if bad.any():
        raise UserError(
            f"label map {pair[1]} has class id {int(label[bad].max())}, but num_classes is {num_classes}",
            f"raise num_classes, or mark unlabelled pixels with {IGNORE_INDEX}",
        )
    return image, label
