"""Datasets: built-in data is made as documented and is deterministic; folder layouts load or fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indexnas.errors import UserError
from indexnas.tasks.registry import builtin_dataset, dataset_options, folder_dataset
from indexnas.tasks.data.matting import trimap_from_alpha
from indexnas.tasks.data.segment import TEXTURE_CLASSES

TASKS = ("denoise", "segment", "matting", "depth")
SAMPLE_KEYS = {
    "denoise": {"noisy": 1, "clean": 1},
    "segment": {"image": 3, "label": None},
    "matting": {"image": 3, "trimap": 1, "alpha": 1, "fg": 3, "bg": 3},
    "depth": {"image": 3, "depth": 1},
}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- built-in data


@pytest.mark.parametrize("task", TASKS)
def test_builtin_shapes_dtypes_and_ranges(task: str) -> None:
    train, val = builtin_dataset(task, seed=0, val_count=4)
    torch.manual_seed(0)
    for dataset, side in ((train, 40 if task == "denoise" else 64), (val, 96 if task == "denoise" else 64)):
        sample = dataset[0]
        assert set(sample) == set(SAMPLE_KEYS[task])
        for key, channels in SAMPLE_KEYS[task].items():
            tensor = sample[key]
            if channels is None:
                assert tensor.shape == (side, side) and tensor.dtype == torch.int64
            else:
                assert tensor.shape == (channels, side, side) and tensor.dtype == torch.float32
                assert torch.isfinite(tensor).all()
        for key in ("clean", "image", "alpha", "fg", "bg", "trimap"):
            if key in sample:
                assert 0.0 <= float(sample[key].min()) and float(sample[key].max()) <= 1.0


@pytest.mark.parametrize("task", TASKS)
def test_builtin_validation_set_is_fixed_by_seed(task: str) -> None:
    _, val_a = builtin_dataset(task, seed=3, val_count=3)
    _, val_b = builtin_dataset(task, seed=3, val_count=3)
    _, val_c = builtin_dataset(task, seed=4, val_count=3)
    assert all(_same(val_a[i], val_b[i]) for i in range(3))
    assert not _same(val_a[0], val_c[0])


@pytest.mark.parametrize("task", TASKS)
def test_builtin_training_samples_repeat_under_the_same_torch_seed(task: str) -> None:
    train, _ = builtin_dataset(task, seed=0)
    torch.manual_seed(11)
    first = [train[i] for i in range(3)]
    torch.manual_seed(11)
    again = [train[i] for i in range(3)]
    fresh = train[0]  # the generator moved on: a new sample, not a replay
    assert all(_same(a, b) for a, b in zip(first, again, strict=True))
    assert not _same(first[0], fresh)


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_denoise_noise_has_the_requested_sigma_and_is_not_clipped(sigma: int) -> None:
    _, val = builtin_dataset("denoise", sigma=sigma, val_count=6)
    noise = torch.cat([(val[i]["noisy"] - val[i]["clean"]).flatten() for i in range(len(val))])
    assert abs(float(noise.std()) * 255 - sigma) < 0.02 * sigma  # 55k samples: std error ~0.3%
    assert abs(float(noise.mean()) * 255) < 0.05 * sigma
    noisy = torch.cat([val[i]["noisy"].flatten() for i in range(len(val))])
    assert float(noisy.min()) < 0.0 or float(noisy.max()) > 1.0  # unclipped, as in the DnCNN protocol


def test_denoise_whole_image_evaluation_trims_to_the_size_multiple() -> None:
    _, val = builtin_dataset("denoise", eval_size=None, multiple=16)
    sizes = {tuple(val[i]["clean"].shape[-2:]) for i in range(len(val))}
    assert sizes == {(512, 512), (288, 384), (400, 592)}  # camera, coins 303x384, coffee 400x600
    assert not val.same_size


def test_segment_labels_cover_the_texture_classes() -> None:
    train, val = builtin_dataset("segment", val_count=24)
    assert train.num_classes == val.num_classes == len(TEXTURE_CLASSES)
    crops = val.parts["crops"]
    labels = torch.stack([crops[i]["label"] for i in range(len(crops))])
    assert set(labels.unique().tolist()) == set(range(len(TEXTURE_CLASSES)))
    # a mosaic is a partition into a few convex cells: most rows change label only a few times
    changes = (labels[:, :, 1:] != labels[:, :, :-1]).sum(dim=2).float().mean()
    assert 0.3 < float(changes) < 4.0


def test_matting_composite_is_exact_and_trimap_agrees_with_alpha() -> None:
    train, val = builtin_dataset("matting", val_count=8)
    torch.manual_seed(0)
    for sample in [train[i] for i in range(8)] + [val[i] for i in range(len(val))]:  # crops, then whole strips
        alpha, fg, bg = sample["alpha"], sample["fg"], sample["bg"]
        torch.testing.assert_close(sample["image"], alpha * fg + (1 - alpha) * bg, atol=1e-6, rtol=0)
        trimap = sample["trimap"]
        assert set(trimap.unique().tolist()) <= {0.0, 0.5, 1.0}
        assert (alpha[trimap == 1.0] == 1.0).all() and (alpha[trimap == 0.0] == 0.0).all()
        soft = (alpha > 0) & (alpha < 1)
        assert (trimap[soft] == 0.5).all()  # every partial pixel is in the unknown region
        assert soft.any()  # crops are centred on the object's edge


def test_trimap_erosion_radius() -> None:
    alpha = np.zeros((21, 21), np.float32)
    alpha[:, 10:] = 1.0
    trimap = trimap_from_alpha(alpha, radius=3)
    row = trimap[10]
    assert row[:7].tolist() == [0.0] * 7  # background farther than 3 px from the edge
    assert row[7:13].tolist() == [0.5] * 6  # 3 px either side of the edge
    assert row[13:].tolist() == [1.0] * 8


def test_depth_scenes_lie_in_the_depth_range() -> None:
    _, val = builtin_dataset("depth", depth_range=(2.0, 6.0), val_count=8, whole_size=None)
    depth = torch.stack([val[i]["depth"] for i in range(len(val))])
    assert float(depth.min()) >= 2.0 and float(depth.max()) <= 6.0
    assert len(depth.unique()) > 8  # walls and layers at different depths


def test_depth_motorcycle_holdout_is_real_with_invalid_pixels() -> None:
    _, val = builtin_dataset("depth", holdout="motorcycle", val_count=4)
    assert val.parts["whole"][0]["depth"].shape == (1, 96, 160)  # the whole 125x185 view, trimmed to multiples of 32
    crops = val.parts["crops"]
    depth = torch.stack([crops[i]["depth"] for i in range(len(crops))])
    valid = depth[depth > 0]
    assert (depth == 0).any()  # pixels without disparity are marked invalid
    assert 2.0 < float(valid.min()) and float(valid.max()) < 5.2  # the notes: about 2.1-5.0 m


def test_unknown_task_and_option_raise_user_errors() -> None:
    with pytest.raises(UserError, match="denoise, segment, matting, depth"):
        builtin_dataset("detection")
    with pytest.raises(UserError, match="sigma"):
        builtin_dataset("denoise", sigmaa=25)
    with pytest.raises(UserError, match="sigma"):
        builtin_dataset("denoise", sigma=0)
    with pytest.raises(UserError, match="patch"):
        builtin_dataset("segment", patch=3)
    with pytest.raises(UserError, match="holdout"):
        builtin_dataset("depth", holdout="kitti")
    with pytest.raises(UserError, match="at most"):
        builtin_dataset("matting", patch=200)


def test_dataset_options_lists_defaults() -> None:
    assert dataset_options("denoise")["sigma"] == 25
    assert dataset_options("segment", "folder")["root"] == "required"


# ---------------------------------------------------------------- folder layouts


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _rgb(rng: np.random.Generator, height: int = 48, width: int = 56) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _segment_folder(root: Path, count: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        _save(root / "images" / f"im{i}.jpg", _rgb(rng))
        label = rng.integers(0, 3, (48, 56), dtype=np.uint8)
        label[0, 0] = 255
        _save(root / "labels" / f"im{i}.png", label)
    return root


def test_denoise_folder_happy_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        _save(tmp_path / "train" / f"{i}.png", rng.integers(0, 256, (50, 60), dtype=np.uint8))
    _save(tmp_path / "test" / "a.png", _rgb(rng, 35, 45))
    train, val = folder_dataset("denoise", tmp_path / "train", val_root=tmp_path / "test", multiple=8)
    torch.manual_seed(0)
    assert train[0]["noisy"].shape == (1, 40, 40)
    assert val[0]["clean"].shape == (1, 32, 40)  # whole image, trimmed to a multiple of 8
    assert len(val) == 1


def test_segment_folder_happy_path_and_split(tmp_path: Path) -> None:
    root = _segment_folder(tmp_path)
    train, val = folder_dataset("segment", root, patch=32, val_fraction=0.25)
    assert train.num_classes == 3 and len(val) == 1
    torch.manual_seed(0)
    sample = train[0]
    assert sample["image"].shape == (3, 32, 32) and sample["label"].shape == (32, 32)
    assert val[0]["label"].shape == (32, 32)  # 48x56 trimmed to multiples of 32
    assert int(val[0]["label"][0, 0]) == 255


def test_matting_folder_happy_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        _save(tmp_path / "fg" / f"o{i}.png", _rgb(rng, 64, 64))
        alpha = np.zeros((64, 64), np.uint8)
        alpha[16:48, 16:48] = 255
        alpha[15, 16:48] = 128
        _save(tmp_path / "alpha" / f"o{i}.png", alpha)
        _save(tmp_path / "bg" / f"b{i}.jpg", _rgb(rng, 40, 90))
    train, val = folder_dataset("matting", tmp_path, patch=32, trimap_radius=(2, 4), val_fraction=0.34)
    torch.manual_seed(0)
    sample = train[0]
    assert sample["image"].shape == (3, 32, 32) and sample["trimap"].shape == (1, 32, 32)
    whole = val[0]
    assert whole["alpha"].shape == (1, 64, 64)  # background enlarged to cover the foreground
    torch.testing.assert_close(
        whole["image"], whole["alpha"] * whole["fg"] + (1 - whole["alpha"]) * whole["bg"], atol=1e-6, rtol=0
    )


def test_depth_folder_png_millimetres_and_npy_metres(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(2):
        _save(tmp_path / "rgb" / f"f{i}.png", _rgb(rng, 40, 40))
    millimetres = np.full((40, 40), 2500, np.uint16)
    millimetres[0, 0] = 0
    _save(tmp_path / "depth" / "f0.png", millimetres)
    np.save(tmp_path / "depth" / "f1.npy", np.full((40, 40), 1.5, np.float32))
    train, val = folder_dataset("depth", tmp_path, patch=32, multiple=8, val_fraction=0.5, seed=1)
    torch.manual_seed(0)
    depths = {round(float(train[i]["depth"].max()), 3) for i in range(8)} | {round(float(val[0]["depth"].max()), 3)}
    assert depths == {2.5, 1.5}
    assert val[0]["depth"].shape == (1, 40, 40)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda root: (root / "labels" / "im1.png").unlink(), "im1.jpg has no label map"),
        (lambda root: _save(root / "labels" / "extra.png", np.zeros((48, 56), np.uint8)), "extra.png has no image"),
        (lambda root: (root / "images" / "im2.jpg").write_bytes(b"not an image"), "cannot read image .*im2.jpg"),
        (lambda root: _save(root / "labels" / "im3.png", np.zeros((40, 56), np.uint8)), "im3.png is 40x56 but"),
        (lambda root: _save(root / "labels" / "im0.png", np.full((48, 56), 7, np.uint8)), "im0.png has class id 7"),
        (lambda root: _save(root / "labels" / "im0.png", np.zeros((48, 56, 3), np.uint8)), "im0.png is not a single"),
    ],
)
def test_segment_folder_errors_name_the_file(tmp_path: Path, damage, message: str) -> None:
    root = _segment_folder(tmp_path)
    damage(root)
    with pytest.raises(UserError, match=message):
        train, val = folder_dataset("segment", root, patch=32, num_classes=3, val_fraction=0.25)
        torch.manual_seed(0)
        for i in range(16):
            train[i]
        val[0]


def test_folder_errors_for_missing_empty_small_and_unsplittable(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        folder_dataset("denoise", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no files ending in"):
        folder_dataset("denoise", tmp_path / "empty")
    _save(tmp_path / "small" / "a.png", np.zeros((20, 30), np.uint8))
    _save(tmp_path / "small" / "b.png", np.zeros((50, 50), np.uint8))
    with pytest.raises(UserError, match="a.png is 20x30, smaller than the 40x40 training patch"):
        folder_dataset("denoise", tmp_path / "small", val_root=tmp_path / "small")
    _save(tmp_path / "one" / "a.png", np.zeros((50, 50), np.uint8))
    with pytest.raises(UserError, match="cannot be split"):
        folder_dataset("denoise", tmp_path / "one")
    with pytest.raises(UserError, match="images folder .*one/images does not exist(.|\n)*ROOT/labels"):
        folder_dataset("segment", tmp_path / "one")


def test_builtin_denoise_validates_on_240_crops_and_the_whole_held_out_photographs() -> None:
    _, val = builtin_dataset("denoise")
    crops, whole = val.parts["crops"], val.parts["whole"]
    assert len(crops) == 240 and crops[0]["clean"].shape == (1, 96, 96)
    assert [whole[i]["clean"].shape for i in range(3)] == [(1, 512, 512), (1, 288, 384), (1, 400, 592)]
    assert val[240]["noisy"] is whole[0]["noisy"]  # indexing runs over the parts in order


def test_denoise_validation_noise_is_drawn_per_item_from_the_seed_the_same_for_every_trial() -> None:
    first, second = builtin_dataset("denoise")[1], builtin_dataset("denoise")[1]
    for index in (0, 239, 240, 242):
        assert torch.equal(first[index]["noisy"], second[index]["noisy"])
    assert not torch.equal(first[0]["noisy"] - first[0]["clean"], first[1]["noisy"] - first[1]["clean"])


def test_denoise_whole_images_alone_when_eval_size_is_none() -> None:
    _, val = builtin_dataset("denoise", eval_size=None)
    assert not hasattr(val, "parts") and len(val) == 3
    with pytest.raises(UserError, match="whole_images"):
        builtin_dataset("denoise", whole_images="yes")
    with pytest.raises(UserError, match="recalibration_size"):
        builtin_dataset("denoise", recalibration_size=4)


# ---------------------------------------------------------------- validation parts and recalibration crops, every task


def _side(sample: dict[str, torch.Tensor]) -> tuple[int, int]:
    return tuple(next(iter(sample.values())).shape[-2:])


@pytest.mark.parametrize("task", TASKS)
def test_every_builtin_task_scores_200_or_more_fixed_crops_then_larger_held_out_images(task: str) -> None:
    train, val = builtin_dataset(task)
    crops, whole = val.parts["crops"], val.parts["whole"]
    assert list(val.parts) == ["crops", "whole"] and len(crops) >= 200 and len(whole) >= 3
    crop_pixels = np.prod(_side(crops[0]))
    assert all(np.prod(_side(whole[i])) > 2 * crop_pixels for i in range(len(whole)))


@pytest.mark.parametrize("task", TASKS)
def test_every_builtin_training_set_has_recalibration_crops_of_128_pixels(task: str) -> None:
    train, _ = builtin_dataset(task)
    torch.manual_seed(0)
    assert _side(train.recalibration[0]) == (128, 128) and _side(train[0]) == ((40, 40) if task == "denoise" else (64, 64))
    assert set(train.recalibration[0]) == set(train[0])  # the same kind of sample, only larger
    assert _side(builtin_dataset(task, patch=72)[0].recalibration[0]) == (144, 144)  # default: 2 x patch above 64


@pytest.mark.parametrize("task", TASKS)
def test_validation_parts_are_identical_across_two_builds(task: str) -> None:
    first, second = builtin_dataset(task)[1], builtin_dataset(task)[1]
    for index in (0, len(first.parts["crops"]) - 1, len(first) - 1):  # the first and last crop, the last whole item
        assert _same(first[index], second[index])


@pytest.mark.parametrize("task", ("segment", "matting", "depth"))
def test_the_crops_part_keeps_the_earlier_validation_items(task: str) -> None:
    crops = builtin_dataset(task)[1].parts["crops"]
    alone = builtin_dataset(task, val_count=3, **({"whole_images": False} if task == "matting" else {"whole_size": None}))[1]
    assert not hasattr(alone, "parts") and all(_same(crops[i], alone[i]) for i in range(3))


def test_recalibration_crops_must_be_larger_than_the_patch() -> None:
    for task in TASKS:
        with pytest.raises(UserError, match="recalibration_size must be larger than the training patch"):
            builtin_dataset(task, recalibration_size=64 if task != "denoise" else 40)
    with pytest.raises(UserError, match="at most 172 pixels"):
        builtin_dataset("matting", recalibration_size=200)


def test_folders_get_recalibration_crops_up_to_the_smallest_training_image_and_whole_images(tmp_path: Path) -> None:
    root = _segment_folder(tmp_path, count=5)
    train, val = folder_dataset("segment", root, patch=16, eval_size=16, val_count=200, val_fraction=0.2)
    torch.manual_seed(0)
    assert _side(train.recalibration[0]) == (48, 48)  # 2 x 16 < 128, cut to the 48x56 images
    assert len(val.parts["crops"]) == 200 and _side(val.parts["whole"][0]) == (32, 32)  # 48x56 trimmed to 32s
    train, val = folder_dataset("segment", root, patch=48, val_fraction=0.2)
    assert not hasattr(train, "recalibration") and not hasattr(val, "parts")  # nothing larger than the patch fits
    with pytest.raises(UserError, match="smaller than the 64x64 recalibration crop"):
        folder_dataset("segment", root, patch=16, recalibration_size=64)
