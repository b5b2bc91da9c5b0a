"""The zoo: plain host models (max pooling/unpooling, strided convs, nearest/bilinear/transposed
upsampling) for the Index Networks surgery, with the paper's baseline figures beside them.

``create_model(name, **kwargs)``, ``list_models()``, ``paper_baseline(name)``, ``model_task(name)``,
``example_input(name, size=224)``; ``"timm:NAME"`` is a UNet over the timm backbone NAME.
Imported on first use (the registry loads timm).
"""

from typing import TYPE_CHECKING

from indexnas.lazy import lazy_exports

if TYPE_CHECKING:
    from indexnas.zoo.registry import create_model, example_input, list_models, model_task, paper_baseline

__all__ = ["create_model", "example_input", "list_models", "model_task", "paper_baseline"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "indexnas.zoo.registry"))
