"""Reading images: files on disk (with errors that name the file) and the photographs inside scikit-image.

Images stay in their stored dtype (uint8/uint16) until a crop is taken, so caches stay small;
`to_unit` turns a crop into float32 in [0, 1].
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from indexnas.errors import UserError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Photographs that ship inside the scikit-image wheel: nothing is downloaded at run time.
SKIMAGE_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "retina",
    "hubble_deep_field",
    "immunohistochemistry",
    "camera",
    "moon",
    "coins",
    "brick",
    "grass",
    "gravel",
    "cell",
    "clock",
    "page",
    "text",
)


@functools.cache
def skimage_photo(name: str) -> np.ndarray:
    """One shipped scikit-image photograph (read-only uint8 array, HxW or HxWx3), cached."""
    if name not in SKIMAGE_PHOTOS:
        raise UserError(f"unknown built-in photograph {name!r}", f"use one of: {', '.join(SKIMAGE_PHOTOS)}")
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    image.setflags(write=False)
    return image


@functools.lru_cache(maxsize=1)
def stereo_motorcycle() -> tuple[np.ndarray, np.ndarray]:
    """The Middlebury motorcycle left view (uint8 HxWx3) and its depth in metres (0 where invalid).

    Depth from disparity d uses the pair's calibration: Z[mm] = 994.978 * 193.001 / (d + 31.086);
    the disparity map marks unknown pixels with +inf, which become 0 (invalid) here.
    """
    import skimage.data

    left, _right, disparity = skimage.data.stereo_motorcycle()
    valid = np.isfinite(disparity)
    depth = np.zeros(disparity.shape, np.float32)
    depth[valid] = 994.978 * 193.001 / (disparity[valid] + 31.086) / 1000.0
    left = np.asarray(left)
    left.setflags(write=False)
    depth.setflags(write=False)
    return left, depth


def read_image(path: Path) -> np.ndarray:
    """Decode one image file to an array in its stored dtype; an unreadable file raises UserError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as handle:
            if handle.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(handle).astype(np.uint16)
            if handle.mode == "LA":
                return np.asarray(handle.convert("L"))
            if handle.mode not in ("1", "L", "P", "I", "F", "RGB"):  # RGBA, CMYK, YCbCr, ...
                return np.asarray(handle.convert("RGB"))
            return np.asarray(handle)  # palette ("P") label maps keep their indices, not the colours
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise UserError(
            f"cannot read image {path}: {error}",
            "replace or remove the file (it must be a PNG, JPEG, BMP or TIFF image)",
        ) from None


@functools.lru_cache(maxsize=128)
def read_cached(path: Path) -> np.ndarray:
    """`read_image`, remembering the last 128 files decoded (read-only arrays in their stored dtype)."""
    image = read_image(path)
    image.setflags(write=False)
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) read from the file header only; an unreadable file raises UserError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as handle:
            width, height = handle.size
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise UserError(f"cannot read image {path}: {error}", "replace or remove the file") from None
    return height, width


def to_unit(image: np.ndarray) -> np.ndarray:
    """Scale an integer image to float32 in [0, 1] by its dtype's range; float images pass unchanged."""
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    return image.astype(np.float32, copy=False)


def as_grey(image: np.ndarray) -> np.ndarray:
    """HxW luminance (ITU-R 601 weights) of an HxW or HxWx3 float image."""
    if image.ndim == 2:
        return image
    return (image[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 version of an HxW or HxWx3 image (grey is repeated into three channels)."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]


def chw(image: np.ndarray) -> np.ndarray:
    """Channels-first float32 copy (1xHxW for grey, CxHxW for colour), as the models expect."""
    if image.ndim == 2:
        image = image[None]
    else:
        image = np.moveaxis(image, -1, 0)
    return np.ascontiguousarray(image, dtype=np.float32)
