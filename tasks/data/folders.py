"""Checks for on-disk dataset layouts: listing, pairing by file stem, sizes, and the train/val split.

Everything is checked when the dataset is built (from file headers, so it is quick), so a bad
folder fails at once with the offending file named instead of halfway through a search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from indexnas.errors import UserError
from indexnas.tasks.data.images import IMAGE_SUFFIXES, image_size


def existing_folder(path: str | Path, what: str, layout: str | None = None) -> Path:
    """The folder as a Path; a missing path or a file raises UserError saying what was expected there."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        state = "is a file, not a folder" if folder.exists() else "does not exist"
        fix = f"the expected layout is {layout}" if layout else f"point it at the folder that holds the {what}"
        raise UserError(f"{what} folder {folder} {state}", fix)
    return folder


def list_files(folder: Path, what: str, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Files in `folder` with one of `suffixes`, sorted by name; none raises UserError naming the folder."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise UserError(
            f"the {what} folder {folder} has no files ending in {', '.join(suffixes)}",
            f"put the {what} there, or point at the folder that holds them",
        )
    return files


def pair_by_stem(first: list[Path], second: list[Path], what: tuple[str, str]) -> list[tuple[Path, Path]]:
    """Match files of two folders by name without suffix; any file without a partner raises UserError naming it."""
    by_stem = {path.stem: path for path in second}
    for path in first:
        if path.stem not in by_stem:
            raise UserError(
                f"{what[0]} {path} has no {what[1]} with the same name in {second[0].parent}",
                f"add {what[1]} '{path.stem}.*' or remove the {what[0]}",
            )
    first_stems = {path.stem for path in first}
    for path in second:
        if path.stem not in first_stems:
            raise UserError(
                f"{what[1]} {path} has no {what[0]} with the same name in {first[0].parent} "
                f"({len(first)} {what[0]}s vs {len(second)} {what[1]}s)",
                f"add {what[0]} '{path.stem}.*' or remove the {what[1]}",
            )
    return [(path, by_stem[path.stem]) for path in first]


def check_same_size(pairs: list[tuple[Path, Path]]) -> None:
    """Paired images must have equal height and width; a mismatch raises UserError naming both files."""
    for a, b in pairs:
        size_a, size_b = _size(a), _size(b)
        if size_a != size_b:
            raise UserError(
                f"{b} is {size_b[0]}x{size_b[1]} but {a} is {size_a[0]}x{size_a[1]}",
                "paired files must have the same height and width: resize or remove the pair",
            )


def check_min_size(paths: list[Path], side: int, purpose: str) -> None:
    """Every image must be at least side x side; a smaller one raises UserError naming it."""
    for path in paths:
        height, width = _size(path)
        if min(height, width) < side:
            raise UserError(
                f"{path} is {height}x{width}, smaller than the {side}x{side} {purpose}",
                f"remove images smaller than {side} pixels, or lower the {purpose} size",
            )


def smallest_side(path: Path) -> int:
    """The shorter side of an image file or a 2-D .npy array."""
    return min(_size(path))


def split(items: list, val_fraction: float, seed: int, what: str) -> tuple[list, list]:
    """A seeded split of items into (train, val) with round(val_fraction * n) items, at least one each side."""
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"val_fraction must be between 0 and 1, got {val_fraction}", "use e.g. 0.2, or give val_root")
    n_val = round(val_fraction * len(items))
    if n_val < 1 or n_val >= len(items):
        raise UserError(
            f"{len(items)} {what} cannot be split into train and val with val_fraction={val_fraction}",
            "add more files, change val_fraction, or give a separate val_root folder",
        )
    order = np.random.default_rng(seed).permutation(len(items))
    val = [items[i] for i in sorted(order[:n_val])]
    train = [items[i] for i in sorted(order[n_val:])]
    return train, val


def train_val_split(
    items: list,
    val_root: str | Path | None,
    read_val: Callable[[str | Path], list],
    val_fraction: float,
    seed: int,
    what: str,
) -> tuple[list, list]:
    """(train, val): all `items` and read_val(val_root), or without val_root a seeded split of `items` (see split)."""
    if val_root is None:
        return split(items, val_fraction, seed, what)
    return items, read_val(val_root)


def _size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file or a 2-D .npy array."""
    return _npy_size(path) if path.suffix == ".npy" else image_size(path)


def _npy_size(path: Path) -> tuple[int, int]:
    try:
        shape = np.load(path, mmap_mode="r").shape
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read array {path}: {error}", "replace or remove the file") from None
    if len(shape) != 2:
        raise UserError(f"{path} has shape {shape}, not a 2-D map", "save depth maps as HxW arrays")
    return shape[0], shape[1]
