"""The third-party sweep: the surgery on models from packages users have (MONAI, HuggingFace
transformers built from small configs, timm families under the zoo's UNet, smp, torchvision),
as a new user would run it, with no downloads and tiny inputs.

Per model: traced (following any fix the refusal suggests), ups and paired ups, ``keep``
bit-exact, ``holistic`` in every mode (a refused mode's fix must name only modes that work; the
parameter delta equals the inserted IndexNet modules' own parameters), a
depthwise choice where the widths allow one, forward and backward, output shapes, and the user's
model object untouched afterwards. ``python tests/third_party_sweep.py`` prints the table.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from indexnas.errors import UserError
from indexnas.surgery import analyze, compat, registry
from indexnas.surgery.rewrite import insert_indexnet

Factory = Callable[[], tuple[nn.Module, Tensor]]
DEPTHWISE = "m2o"


def _image(size: int) -> Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))


def _monai(name: str, size: int = 64, **kwargs: object) -> Factory:
    def make() -> tuple[nn.Module, Tensor]:
        from monai.networks import nets

        return getattr(nets, name)(**kwargs), _image(size)

    return make


def _hf(model_class: str, size: int, config: Callable[[object], object]) -> Factory:
    def make() -> tuple[nn.Module, Tensor]:
        import transformers

        return getattr(transformers, model_class)(config(transformers)), _image(size)

    return make


def _timm_unet(backbone: str, size: int = 64) -> Factory:
    def make() -> tuple[nn.Module, Tensor]:
        from indexnas import zoo

        return zoo.create_model(f"timm:{backbone}", width=0.25), zoo.example_input(f"timm:{backbone}", size=size)

    return make


def _smp(arch: str, encoder: str, size: int = 64) -> Factory:
    def make() -> tuple[nn.Module, Tensor]:
        import segmentation_models_pytorch as smp

        return smp.create_model(arch, encoder_name=encoder, encoder_weights=None), _image(size)

    return make


def _torchvision(name: str, size: int = 64) -> Factory:
    def make() -> tuple[nn.Module, Tensor]:
        from torchvision.models import segmentation

        return getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=2), _image(size)

    return make


def _maskformer_config(t: object) -> object:
    swin = t.SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                        window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = t.MaskFormerConfig(backbone_config=swin, fpn_feature_size=32, mask_feature_size=32, num_queries=4, num_labels=2)
    config.decoder_config.update(dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=1,
                                      decoder_attention_heads=1, encoder_ffn_dim=16, decoder_ffn_dim=16))
    return config


_STAGES4 = ["stage1", "stage2", "stage3", "stage4"]
MODELS: dict[str, Factory] = {
    "monai.BasicUNet": _monai("BasicUNet", spatial_dims=2, in_channels=3, out_channels=2, features=(8, 8, 16, 16, 32, 8)),
    "monai.BasicUNetPlusPlus": _monai("BasicUNetPlusPlus", spatial_dims=2, in_channels=3, out_channels=2,
                                      features=(8, 8, 16, 16, 32, 8)),
    "monai.UNet": _monai("UNet", spatial_dims=2, in_channels=3, out_channels=2, channels=(8, 16, 32, 32),
                         strides=(2, 2, 2), num_res_units=1),
    "monai.AttentionUnet": _monai("AttentionUnet", spatial_dims=2, in_channels=3, out_channels=2,
                                  channels=(8, 16, 32, 32), strides=(2, 2, 2)),
    "monai.FlexibleUNet": _monai("FlexibleUNet", in_channels=3, out_channels=2, backbone="resnet18", pretrained=False,
                                 spatial_dims=2, decoder_channels=(32, 16, 8, 8, 8)),
    "monai.SegResNet": _monai("SegResNet", spatial_dims=2, init_filters=8, in_channels=3, out_channels=2,
                              blocks_down=(1, 1, 1), blocks_up=(1, 1)),
    "monai.SegResNetDS": _monai("SegResNetDS", spatial_dims=2, init_filters=8, in_channels=3, out_channels=2,
                                blocks_down=(1, 1, 1)),
    "monai.DynUNet": _monai("DynUNet", spatial_dims=2, in_channels=3, out_channels=2, kernel_size=[3, 3, 3, 3],
                            strides=[1, 2, 2, 2], upsample_kernel_size=[2, 2, 2], filters=[8, 16, 32, 32]),
    "hf.Segformer": _hf("SegformerForSemanticSegmentation", 64, lambda t: t.SegformerConfig(
        depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=16,
        num_labels=2)),
    "hf.UperNet-ConvNext": _hf("UperNetForSemanticSegmentation", 256, lambda t: t.UperNetConfig(
        backbone_config=t.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], out_features=_STAGES4),
        hidden_size=16, num_labels=2, use_auxiliary_head=False)),
    "hf.DPT": _hf("DPTForDepthEstimation", 64, lambda t: t.DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37, image_size=64, patch_size=16,
        backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 24, 32], fusion_hidden_size=16)),
    "hf.MaskFormer-Swin": _hf("MaskFormerForInstanceSegmentation", 64, _maskformer_config),
    "hf.MobileViT-DeepLabV3": _hf("MobileViTForSemanticSegmentation", 64, lambda t: t.MobileViTConfig(
        image_size=64, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], aspp_out_channels=16,
        num_labels=2)),
    **{f"timm-unet.{name}": _timm_unet(name) for name in (
        "ghostnetv2_100", "tresnet_m", "pvt_v2_b0", "lcnet_050", "hgnetv2_b0", "mobileone_s0", "fbnetv3_b",
        "repghostnet_050", "mobilenetv4_conv_small", "convnextv2_atto", "starnet_s1",
        "inception_next_atto", "tiny_vit_5m_224", "twins_pcpvt_small")},
    "smp.Unet-mit_b0": _smp("unet", "mit_b0"),
    "smp.Segformer-mit_b0": _smp("segformer", "mit_b0"),
    "smp.FPN-tu-lcnet_050": _smp("fpn", "tu-lcnet_050"),
    "smp.Unet-tu-tresnet_m": _smp("unet", "tu-tresnet_m"),
    "torchvision.fcn_resnet50": _torchvision("fcn_resnet50"),
    "torchvision.deeplabv3_mobilenet_v3_large": _torchvision("deeplabv3_mobilenet_v3_large"),
    "torchvision.lraspp_mobilenet_v3_large": _torchvision("lraspp_mobilenet_v3_large"),
}


@dataclass
class Row:
    """What the surgery did on one model."""

    model: str
    traced: bool = False
    ups: int = 0
    paired: int = 0
    keep_exact: bool = False
    holistic_modes: list[str] = field(default_factory=list)  # modes where holistic inserted, ran and trained
    depthwise: str = ""  # "<mode>[/group]" where the depthwise choice inserted, else ""
    fixes_followed: list[str] = field(default_factory=list)
    reason: str = ""  # why nothing could be inserted (unsupported), from the refusal

    @property
    def insert_ok(self) -> bool:
        return bool(self.holistic_modes)


def _snapshot(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, tuple[str, ...]], dict[str, bool]]:
    """The model's weights, attribute names and train flags: what the surgery must leave as it was."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    attributes = {name: tuple(sorted(vars(m))) for name, m in model.named_modules()}
    flags = {name: m.training for name, m in model.named_modules()}
    return state, attributes, flags


def _same_snapshot(a: tuple, b: tuple) -> bool:
    return a[1:] == b[1:] and a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])


_LEAF_FIX = re.compile(r"register_leaf_module\('([\w.]+)'")
_FUNCTION_FIX = re.compile(r"register_leaf_function\(([\w.]+),")


def _follow(fix: str) -> str | None:
    """Apply a refusal's registry fix line; returns what was registered, None if the line names none."""
    if match := _FUNCTION_FIX.search(fix):
        module, _, name = match.group(1).rpartition(".")
        registry.register_leaf_function(getattr(importlib.import_module(module), name), "sweep: the suggested fix")
        return f"leaf function {match.group(1)}"
    if match := _LEAF_FIX.search(fix):
        registry.register_leaf_module(match.group(1), "sweep: the suggested fix")
        return f"leaf module {match.group(1)}"
    return None


def _outputs(value: object) -> list[Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, Tensor)]


def _trains(gm: nn.Module, model: nn.Module, x: Tensor) -> None:
    """Forward in eval (the original's output shapes) and forward + backward in train mode. The
    rewritten model shares the user's modules, so training it moves their batch-norm statistics:
    those, the train flags and the gradients are put back afterwards (the surgery itself must not
    change the model; training the result may)."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {m: m.training for m in model.modules()}
    try:
        _forward_backward(gm, model, x)
    finally:
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(saved[k])
        for module, flag in flags.items():
            module.training = flag
        for p in model.parameters():
            p.grad = None


def _forward_backward(gm: nn.Module, model: nn.Module, x: Tensor) -> None:
    batch = x.expand(2, *x.shape[1:]) + 0.01 * torch.randn(2, *x.shape[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = [t.shape for t in _outputs(model.eval()(batch))]
        assert [t.shape for t in _outputs(gm.eval()(batch))] == want
    gm.train()
    loss = sum(t.float().square().mean() for t in _outputs(gm(batch)) if t.is_floating_point())
    loss.backward()
    learned = [p for name, p in gm.named_parameters() if name.startswith("indexnet.")]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in learned)


def sweep_one(name: str) -> Row:
    """Run the surgery on one model of the sweep (the registries are restored afterwards)."""
    saved = dict(registry.LEAF_MODULES), dict(registry.LEAF_FUNCTIONS)
    torch.manual_seed(0)
    model, x = MODELS[name]()
    model.eval()
    with torch.no_grad():  # a model as users have it: run once (HuggingFace installs its output hooks on the first call)
        model(x)
    before = _snapshot(model)
    row = Row(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _check(model, x, row)
    finally:
        registry.LEAF_MODULES.clear()
        registry.LEAF_MODULES.update(saved[0])
        registry.LEAF_FUNCTIONS.clear()
        registry.LEAF_FUNCTIONS.update(saved[1])
    assert _same_snapshot(before, _snapshot(model)), f"{name}: the surgery changed the user's model"
    return row


def _check(model: nn.Module, x: Tensor, row: Row) -> None:
    for _ in range(3):  # follow up to three suggested fixes
        try:
            gm, report = analyze(model, x)
            break
        except UserError as error:
            followed = _follow(error.fix or "")
            if followed is None:
                row.reason = str(error).splitlines()[0]
                return
            row.fixes_followed.append(followed)
    else:
        row.reason = "still refused after three suggested fixes"
        return
    row.traced, row.ups, row.paired = True, len(report.pairs) + len(report.unpaired), len(report.pairs)
    keep, _ = insert_indexnet(model, x, "keep", "pool", flops=False)
    assert isinstance(keep, torch.fx.GraphModule)
    with torch.no_grad():
        row.keep_exact = all(torch.equal(a, b) for a, b in zip(_outputs(keep(x)), _outputs(model(x))))
    refusals: dict[str, UserError] = {}
    for mode in compat.MODES:
        try:
            gm, rewrite = insert_indexnet(model, x, "holistic", mode, flops=False)
        except UserError as error:
            refusals[mode] = error
            continue
        added = sum(p.numel() for p in gm.get_submodule("indexnet").parameters())
        assert rewrite.params_after - rewrite.params_before == sum(r.params_added for r in rewrite.rows) == added
        _trains(gm, model, x)
        row.holistic_modes.append(mode)
    for mode, error in refusals.items():  # a refusal's fix names modes that work, or says why none does
        named = re.findall(r"--mode (\w+)", error.fix or "")
        assert set(named) <= set(row.holistic_modes), f"{mode}: the fix {error.fix!r} names a mode that fails"
        assert named or not row.holistic_modes, f"{mode}: the fix {error.fix!r} hides the modes that work"
        if not row.holistic_modes:
            row.reason = str(error).splitlines()[0]
    for mode in row.holistic_modes:
        for fit in compat.CHANNEL_FITS:
            try:
                gm, rewrite = insert_indexnet(model, x, DEPTHWISE, mode, channel_fit=fit, flops=False)
            except UserError:
                continue
            assert any(r.choice == DEPTHWISE for r in rewrite.rows)
            _trains(gm, model, x)
            row.depthwise = mode if fit == "strict" else f"{mode}/{fit}"
            return


def table(rows: list[Row]) -> str:
    lines = ["| model | traced | paired ups / ups | keep exact | holistic in | depthwise | fixes followed / reason |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        note = "; ".join(r.fixes_followed) + ("; " if r.fixes_followed and r.reason else "") + r.reason
        lines.append(f"| {r.model} | {'yes' if r.traced else 'no'} | {r.paired}/{r.ups} | "
                     f"{'yes' if r.keep_exact else ('-' if not r.traced else 'NO')} | {', '.join(r.holistic_modes) or '-'} | "
                     f"{r.depthwise or '-'} | {note} |")
    done = sum(r.insert_ok for r in rows)
    lines.append(f"\n{done}/{len(rows)} models rewritten; {sum(r.traced for r in rows)}/{len(rows)} traced; "
                 f"{sum(r.paired for r in rows)}/{sum(r.ups for r in rows)} ups paired")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    names = sys.argv[1:] or list(MODELS)
    rows = []
    for model_name in names:
        try:
            rows.append(sweep_one(model_name))
        except Exception as failure:  # noqa: BLE001 - the table reports it
            rows.append(Row(model_name, reason=f"CHECK FAILED: {type(failure).__name__}: {failure!s:.300}"))
        print(table(rows[-1:]).splitlines()[2], flush=True)
    print(table(rows))
