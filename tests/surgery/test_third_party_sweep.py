"""The third-party sweep (tests/third_party_sweep.py) as a specification: for each model, how many
ups pair, in which modes a holistic IndexNet goes in (forward, backward, output shapes, the user's
model untouched, keep bit-exact: all checked inside ``sweep_one``), and for the models that stay
unsupported, the reason the refusal gives. ``python tests/third_party_sweep.py`` prints the table."""

from __future__ import annotations

import pytest

from third_party_sweep import MODELS, sweep_one

ALL = ("pool", "stride", "decoder")
CONV = ("stride", "decoder")  # strided-conv downs: pool mode has nothing to replace

# model: (paired ups, ups, modes where holistic inserts, reason when none does)
EXPECTED: dict[str, tuple[int, int, tuple[str, ...], str]] = {
    "monai.BasicUNet": (4, 4, ALL, ""),
    "monai.BasicUNetPlusPlus": (10, 10, ALL, ""),
    "monai.UNet": (3, 3, CONV, ""),
    "monai.AttentionUnet": (3, 3, CONV, ""),
    "monai.FlexibleUNet": (5, 5, ALL, ""),
    "monai.SegResNet": (2, 2, CONV, ""),
    "monai.SegResNetDS": (2, 2, CONV, ""),
    "monai.DynUNet": (3, 3, CONV, ""),
    "hf.Segformer": (3, 3, CONV, ""),  # logits at 1/4: two compound ups; the K/V reductions are not downs
    "hf.UperNet-ConvNext": (7, 10, CONV, ""),  # 3 pyramid-pool bins (global-pool)
    "hf.DPT": (7, 7, CONV, ""),  # a x16 patchify stem: its ups pair as parts of it, refused naming rate 16
    # Swin's patch merging downsamples in token layout (strided slicing): no NCHW down to pair
    "hf.MaskFormer-Swin": (0, 3, (), "none of its 3 ups pairs with a down"),
    # int() of sizes bakes them into the graph; the module that reads them kept whole hides its downs
    "hf.MobileViT-DeepLabV3": (0, 1, (), "none of its 1 ups pairs with a down"),
    "timm-unet.ghostnetv2_100": (15, 15, ALL, ""),  # DFC attention: F.avg_pool2d + interpolate in each block
    "timm-unet.tresnet_m": (5, 5, ("decoder",), ""),  # x4 space-to-depth stem: two x2 ups, each a part of it (rate 4); blur-pool downs are F.conv2d
    "timm-unet.pvt_v2_b0": (5, 5, CONV, ""),  # x4 patch embedding: two x2 ups, each a part of it (rate 4)
    "timm-unet.lcnet_050": (5, 5, CONV, ""),
    "timm-unet.hgnetv2_b0": (5, 5, CONV, ""),
    "timm-unet.mobileone_s0": (5, 5, CONV, ""),
    "timm-unet.fbnetv3_b": (5, 5, CONV, ""),
    "timm-unet.repghostnet_050": (5, 5, CONV, ""),
    "timm-unet.mobilenetv4_conv_small": (5, 5, CONV, ""),
    "timm-unet.convnextv2_atto": (5, 5, CONV, ""),  # x4 stem: two x2 ups, each a part of it (rate 4)
    "timm-unet.starnet_s1": (5, 5, CONV, ""),
    "timm-unet.inception_next_atto": (5, 5, CONV, ""),  # x4 stem: two x2 ups, each a part of it (rate 4)
    "timm-unet.tiny_vit_5m_224": (5, 5, CONV, ""),
    "timm-unet.twins_pcpvt_small": (5, 5, CONV, ""),  # x4 patch embedding: two x2 ups, each a part of it (rate 4)
    "smp.Unet-mit_b0": (5, 5, CONV, ""),  # x4 patch embedding: two x2 ups, each a part of it (rate 4)
    "smp.Segformer-mit_b0": (4, 4, CONV, ""),
    "smp.FPN-tu-lcnet_050": (10, 10, CONV, ""),
    "smp.Unet-tu-tresnet_m": (5, 5, ("decoder",), ""),
    "torchvision.fcn_resnet50": (1, 1, CONV, ""),  # one x8 up over three transitions (compound)
    "torchvision.deeplabv3_mobilenet_v3_large": (1, 2, CONV, ""),  # ASPP image pooling (global-pool)
    "torchvision.lraspp_mobilenet_v3_large": (2, 2, CONV, ""),
}

PACKAGES = {"monai": "monai", "hf": "transformers", "smp": "segmentation_models_pytorch", "timm-unet": "timm",
            "torchvision": "torchvision"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_third_party_model(name: str) -> None:
    pytest.importorskip(PACKAGES[name.split(".")[0]])
    row = sweep_one(name)
    paired, ups, modes, reason = EXPECTED[name]
    assert row.traced and row.keep_exact
    assert (row.paired, row.ups, tuple(row.holistic_modes)) == (paired, ups, modes)
    assert reason in row.reason and (bool(row.reason) == bool(reason))
