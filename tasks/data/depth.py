"""Depth data: layered scenes with exact depth (built-in), the real Middlebury motorcycle, or RGB + depth folders.

Built-in layered scene (a pinhole camera with focal length f equal to the image side): a
fronto-parallel back wall in the farthest 20% of `depth_range`, then 2-6 rectangles or ellipses of
physical size S = 0.3-1.2 m at depths drawn uniformly between the near limit and the wall, painted
far to near so occlusion agrees with depth. Objects appear with size f * S / Z, and every surface
carries a real texture photograph scaled by 1/Z (one texture pixel spans 1/Z image pixels, Z in
metres; anti-aliased through a pyramid), so far surfaces show finer texture. Depth is the painted
surface's Z, so it is exact. Training textures are the left 75% of each
photograph, evaluation textures the right 25%. Optionally the evaluation set is the real motorcycle
pair instead (depth from its disparity; pixels without disparity are invalid).
Samples: {"image": 3xHxW float32 in [0, 1], "depth": 1xHxW float32 metres, 0 = invalid}.
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
from indexnas.tasks.data.crops import cut, eval_window, scaled_crop
from indexnas.tasks.data.dataset import Maker, SampleDataset
from indexnas.tasks.data.validation import ValidationSet
from indexnas.tasks.data.images import as_rgb, chw, read_cached, skimage_photo, stereo_motorcycle, to_unit

TEXTURE_PHOTOS = ("brick", "grass", "gravel", "immunohistochemistry", "coffee", "chelsea", "astronaut", "rocket")
TRAIN_SHARE = 0.75
OBJECT_SIZES = (0.3, 1.2)  # metres
HOLDOUTS = ("synthetic", "motorcycle")
MOTORCYCLE_SCALE = 0.25  # the 500x741 view is shrunk to 125x185 before cropping
MOTORCYCLE_MULTIPLE = 32  # the whole view is trimmed to 96x160, a size every zoo host takes
WHOLE_SIZE, WHOLE_COUNT = 256, 12  # the larger held-out scenes of the validation's second part
LAYOUT = "ROOT/rgb/NAME.png + ROOT/depth/NAME.png (16-bit mm) or NAME.npy (metres)"


def builtin(
    patch: int = 64,
    eval_size: int | None = 64,
    val_count: int = 240,
    depth_range: Sequence[float] = (1.0, 10.0),
    layers: Sequence[int] = (2, 6),
    holdout: str = "synthetic",
    train_size: int = 4096,
    seed: int = 0,
    whole_size: int | None = WHOLE_SIZE,
    whole_count: int = WHOLE_COUNT,
    recalibration_size: int | None = None,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """Layered textured scenes for training; held-out-texture scenes or the real motorcycle for evaluation:
    `val_count` crops (the score), then `whole_count` scenes of `whole_size` or the whole motorcycle view
    (``whole_*``; whole_size None: none)."""
    options = GeneratedOptions.checked(patch, eval_size, seed, recalibration_size)
    near, far = checks.require_range("depth_range", depth_range, 0.1, 1000.0)
    low, high = (int(v) for v in checks.require_range("layers", layers, 0, 64))
    val_count = checks.require_int("val_count", val_count, 1)
    if holdout not in HOLDOUTS:
        raise UserError(f"unknown depth holdout {holdout!r}", f"use one of: {', '.join(HOLDOUTS)}")

    def sampler(part: str, side: int):
        def sample(_index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
            return _layered_scene(side, int(rng.integers(low, high + 1)), (near, far), _pyramids(part), rng)

        return sample

    what = f"depth layered scenes {near:g}-{far:g} m"
    if holdout == "motorcycle":
        crops = _motorcycle(options.eval_side)
        whole = None if whole_size is None else (_motorcycle(None), 1, "the whole Middlebury motorcycle view")
        return generated_datasets(lambda part, side: crops if part == "val" else sampler(part, side), options,
                                  train_size, val_count, augmentation="hflip", what=what,
                                  held_out="crops of the real Middlebury motorcycle", whole=whole)
    return generated_datasets(sampler, options, train_size, val_count, augmentation="hflip", what=what,
                              held_out="held-out textures",
                              whole=whole_part(sampler, whole_size, whole_count, "held-out textures"))


def from_folder(
    root: str | Path,
    val_root: str | Path | None = None,
    val_fraction: float = 0.2,
    depth_scale: float | None = None,
    patch: int = 224,
    eval_size: int | None = None,
    val_count: int = 64,
    multiple: int = 32,
    train_size: int = 4096,
    seed: int = 0,
    whole_images: bool = True,
    recalibration_size: int | None = None,
) -> tuple[SampleDataset, SampleDataset | ValidationSet]:
    """NYUv2-style `root/rgb/*` images with `root/depth/*` maps of the same names.

    Depth maps are 16-bit PNGs (times `depth_scale`, default 0.001: millimetres to metres) or
    float .npy arrays (times `depth_scale`, default 1: already metres); 0 or non-finite is invalid.
    """
    options = CropOptions.checked(patch, eval_size, multiple, seed)
    if depth_scale is not None and (
        isinstance(depth_scale, bool) or not isinstance(depth_scale, (int, float)) or depth_scale <= 0
    ):
        raise UserError(f"depth_scale must be a positive number, got {depth_scale!r}", "use e.g. 0.001 for millimetres")
    train_pairs, val_pairs = folders.train_val_split(
        _pairs(root), val_root, _pairs, val_fraction, options.seed, "image/depth pairs"
    )
    options.check_fits([rgb for rgb, _ in train_pairs], [rgb for rgb, _ in val_pairs])

    def read(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
        return as_rgb(read_cached(pair[0])), _read_depth(pair[1], depth_scale)

    def finish(rgb: np.ndarray, depth: np.ndarray, _rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"image": chw(to_unit(rgb)), "depth": chw(depth)}

    return crop_datasets(
        lambda side: training_crops(train_pairs, read, finish, side),
        lambda eval_options: evaluation_crops(val_pairs, read, finish, eval_options),
        len(val_pairs),
        options,
        train_size=train_size,
        val_count=val_count,
        augmentation="hflip",
        what=f"depth folder {root}",
        recalibration_side=folder_recalibration_side(recalibration_size, options.patch, [rgb for rgb, _ in train_pairs]),
        whole_images=whole_images,
    )


def _layered_scene(
    side: int,
    layer_count: int,
    depth_range: tuple[float, float],
    textures: tuple[tuple[np.ndarray, ...], ...],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """One scene: a textured back wall and layer_count textured shapes, painted far to near."""
    near, far = depth_range
    wall_depth = float(rng.uniform(near + 0.8 * (far - near), far))
    image = _texture_at(textures[int(rng.integers(len(textures)))], side, wall_depth, rng)
    depth = np.full((side, side), wall_depth, np.float32)
    rows, cols = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    for z in np.sort(rng.uniform(near, wall_depth, size=layer_count))[::-1]:
        half_height, half_width = side * rng.uniform(*OBJECT_SIZES, size=2) / (2 * z)  # f * S / Z, f = side
        centre_row, centre_col = rng.uniform(0, side, size=2)
        dy, dx = (rows - centre_row) / half_height, (cols - centre_col) / half_width
        if rng.integers(2):
            shape = (np.abs(dy) <= 1) & (np.abs(dx) <= 1)
        else:
            shape = dy**2 + dx**2 <= 1
        image[shape] = _texture_at(textures[int(rng.integers(len(textures)))], side, float(z), rng)[shape]
        depth[shape] = z
    return {"image": chw(image), "depth": depth[None]}


def _texture_at(pyramid: tuple[np.ndarray, ...], side: int, z: float, rng: np.random.Generator) -> np.ndarray:
    """A side x side RGB view of a texture on a surface at depth z: one texture pixel spans 1/z image pixels.

    A pyramid level pre-shrunk by 2^floor(log2 z) avoids aliasing; a level too small for the
    view is extended by mirroring (real pixels, reflected).
    """
    level = min(int(np.log2(max(z, 1.0))), len(pyramid) - 1)
    source = pyramid[level]
    needed = int(np.ceil(side * z / 2.0**level))
    if needed > min(source.shape[:2]):
        pad = ((0, max(0, needed - source.shape[0])), (0, max(0, needed - source.shape[1])), (0, 0))
        source = np.pad(source, pad, mode="symmetric")
    return scaled_crop(source, side, 2.0**level / z, rng)


@functools.cache
def _pyramids(part: str) -> tuple[tuple[np.ndarray, ...], ...]:
    """For each texture photograph's training (left) or evaluation (right) part: float RGB halved
    repeatedly with anti-aliasing while both sides stay >= 32 pixels."""
    from skimage.transform import rescale

    pyramids = []
    for name in TEXTURE_PHOTOS:
        photo = as_rgb(skimage_photo(name))
        split_col = int(photo.shape[1] * TRAIN_SHARE)
        levels = [to_unit(photo[:, :split_col] if part == "train" else photo[:, split_col:])]
        while min(levels[-1].shape[:2]) >= 64:
            levels.append(rescale(levels[-1], 0.5, order=1, anti_aliasing=True, channel_axis=2).astype(np.float32))
        pyramids.append(tuple(levels))
    return tuple(pyramids)


def _motorcycle(side: int | None) -> Maker:
    """Evaluation maker over the motorcycle view shrunk by MOTORCYCLE_SCALE (depth: nearest sample): random
    side x side crops, or (None) the whole view trimmed to a multiple of MOTORCYCLE_MULTIPLE."""
    small_rgb, small_depth = _small_motorcycle()
    height, width = small_rgb.shape[:2]
    if side is not None and side > min(height, width):
        raise UserError(
            f"the motorcycle hold-out is {height}x{width} pixels, smaller than eval_size {side}",
            f"use eval_size <= {min(height, width)}",
        )

    def sample(_index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        window = eval_window(small_rgb.shape, side, MOTORCYCLE_MULTIPLE, rng)
        return {"image": chw(cut(small_rgb, window)), "depth": chw(cut(small_depth, window))}

    return sample


@functools.cache
def _small_motorcycle() -> tuple[np.ndarray, np.ndarray]:
    """The motorcycle's left view (float RGB) and depth, shrunk by MOTORCYCLE_SCALE."""
    from skimage.transform import resize

    left, depth = stereo_motorcycle()
    height, width = round(left.shape[0] * MOTORCYCLE_SCALE), round(left.shape[1] * MOTORCYCLE_SCALE)
    small_rgb = resize(to_unit(left), (height, width), order=1, anti_aliasing=True).astype(np.float32)
    small_depth = resize(depth, (height, width), order=0, anti_aliasing=False, preserve_range=True)
    return small_rgb, small_depth


def _pairs(root: str | Path) -> list[tuple[Path, Path]]:
    folder = folders.existing_folder(root, "depth dataset", LAYOUT)
    images = folders.list_files(folders.existing_folder(folder / "rgb", "RGB images", LAYOUT), "RGB images")
    depths = folders.list_files(
        folders.existing_folder(folder / "depth", "depth maps", LAYOUT), "depth maps", (".png", ".npy", ".tif", ".tiff")
    )
    pairs = folders.pair_by_stem(images, depths, ("RGB image", "depth map"))
    folders.check_same_size(pairs)
    return pairs


def _read_depth(path: Path, depth_scale: float | None) -> np.ndarray:
    """Depth in metres (float32, 0 where invalid) from a 16-bit PNG/TIFF or a float .npy map."""
    if path.suffix == ".npy":
        raw = np.load(path).astype(np.float32)
        scale = 1.0 if depth_scale is None else depth_scale
    else:
        raw = read_cached(path)
        if raw.ndim != 2:
            raise UserError(f"depth map {path} has {raw.shape[2]} channels", "store depth as a single-channel image")
        scale = (0.001 if np.issubdtype(raw.dtype, np.integer) else 1.0) if depth_scale is None else depth_scale
        raw = raw.astype(np.float32)
    depth = raw * np.float32(scale)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth
