"""Index maps of a rewritten model on one image, as in the paper's Figure 10.

Forward hooks on the model's index modules (IndexNet, MaxIndex, HolisticMaxIndex, UniformIndex)
capture each decoder index map; a holistic map (one channel) is shown as it is, a depthwise map is
averaged over its channels. A module shared by several pairs (modelwise O2O) gives one map per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from indexnas.errors import UserError
from indexnas.indexnet import HolisticMaxIndex, IndexNet, MaxIndex, UniformIndex

FIXED_NAMES: dict[type, str] = {MaxIndex: "max", HolisticMaxIndex: "hmi", UniformIndex: "avg"}
INDEX_MODULES: tuple[type, ...] = (IndexNet, *FIXED_NAMES)
MAX_COLUMNS = 4


@dataclass
class IndexMap:
    """One decoder index map captured at one call of an index module."""

    module: str  # the module's name in the model (the first name of a shared module)
    call: int  # 0 for the first call of that module, 1 for its second (shared modelwise module) ...
    choice: str  # the IndexSpec string of the module, e.g. "m2o-nl-c"
    channels: int  # the map's channels: 1 (holistic) or the feature's C (depthwise)
    image: np.ndarray  # (H, W): the map itself, or its channel mean


def _choice(module: nn.Module) -> str:
    return module.spec_text if isinstance(module, IndexNet) else FIXED_NAMES[type(module)]


def collect_index_maps(model: nn.Module, image: Tensor) -> list[IndexMap]:
    """Run ``model`` on ``image`` (C, H, W) or (1, C, H, W) in eval mode and return its decoder index maps
    in the order they were computed."""
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[0] != 1:
        raise UserError(f"expected one image (C, H, W) or (1, C, H, W), got shape {tuple(image.shape)}",
                        "pass a single image tensor")
    modules = [(name, m) for name, m in model.named_modules() if isinstance(m, INDEX_MODULES)]
    if not modules:
        raise UserError("the model has no index modules (IndexNet, max, hmi, avg)",
                        "pass a model rewritten by the surgery, e.g. `indexnas insert` or surgery.insert_indexnet")
    maps: list[IndexMap] = []
    calls: dict[str, int] = {}

    def hook(name: str, module: nn.Module):
        def capture(_module: nn.Module, _inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
            decoder = output[1][0].detach().float().cpu()
            calls[name] = calls.get(name, -1) + 1
            maps.append(IndexMap(name, calls[name], _choice(module), decoder.shape[0], decoder.mean(0).numpy()))

        return capture

    handles = [m.register_forward_hook(hook(name, m)) for name, m in modules]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(image)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return maps


def _displayable(image: Tensor) -> np.ndarray:
    """The input as a grey or RGB array in [0, 1] (min-max scaled; a 4th channel such as a trimap is dropped)."""
    array = image.detach().float().cpu().reshape(-1, *image.shape[-2:])
    array = array[:3] if array.shape[0] >= 3 else array[:1]
    low, high = float(array.min()), float(array.max())
    array = (array - low) / (high - low) if high > low else array * 0
    return array[0].numpy() if array.shape[0] == 1 else array.permute(1, 2, 0).numpy()


def plot_index_maps(model: nn.Module, image: Tensor, title: str | None = None) -> Figure:
    """The input image, then each decoder index map of ``model`` on it (holistic maps directly,
    depthwise maps averaged over channels), one panel per map with its module and choice."""
    maps = collect_index_maps(model, image)
    panels = len(maps) + 1
    columns = min(panels, MAX_COLUMNS)
    rows = -(-panels // columns)
    figure = Figure(figsize=(3.0 * columns, 3.1 * rows))
    shown = _displayable(image)
    axes = figure.add_subplot(rows, columns, 1)
    axes.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    axes.set_title(f"input {tuple(image.shape[-2:])}", fontsize=8)
    axes.set_axis_off()
    for position, index_map in enumerate(maps, start=2):
        axes = figure.add_subplot(rows, columns, position)
        picture = axes.imshow(index_map.image, cmap="viridis")
        kind = "holistic" if index_map.channels == 1 else f"mean of {index_map.channels} channels"
        call = f" (call {index_map.call + 1})" if index_map.call else ""
        axes.set_title(f"{index_map.module}{call}\n{index_map.choice}, {kind}, {index_map.image.shape}", fontsize=7)
        axes.set_axis_off()
        figure.colorbar(picture, ax=axes, fraction=0.046, pad=0.02)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure
