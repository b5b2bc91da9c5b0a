"""The pair finder on models no one here wrote: segmentation_models_pytorch architectures over
several encoders, and the zoo's UNet over timm ``features_only`` backbones of many families.

Expected outcomes per model: how many ups pair exactly, how many are compound (a x4/x8 up over
several x2 transitions), and why the rest are unpaired:
- ``global-pool``: the up enlarges a global/pyramid pool's output (PSP bins, ASPP image pooling);
- ``partial``: a x2 up undoes half of a x4 down (ConvNeXt/EdgeNeXt/PoolFormer x4 stems);
- ``ambiguous``: several transitions feed it and no skip singles one out (HRNet's fused branches).
The fast subset runs by default; the full sweep is marked slow.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from indexnas.surgery import analyze
from indexnas.surgery.pairs import PairReport

smp = pytest.importorskip("segmentation_models_pytorch")

ENCODERS = ("resnet18", "mobilenet_v2", "efficientnet-b0", "tu-convnext_atto", "tu-regnetx_002")


def summary(report: PairReport) -> tuple[int, int, dict[str, int]]:
    exact = sum(not p.compound for p in report.pairs)
    return exact, len(report.pairs) - exact, dict(Counter(u.code for u in report.unpaired))


def smp_report(arch: str, encoder: str, size: int) -> PairReport:
    torch.manual_seed(0)
    model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None)
    return analyze(model, torch.rand(1, 3, size, size))[1]


def zoo_report(backbone: str, size: int = 64) -> PairReport:
    from indexnas import zoo

    model = zoo.create_model(f"timm:{backbone}", width=0.25)
    return analyze(model, zoo.example_input(f"timm:{backbone}", size=size))[1]


X4_STEM = {"tu-convnext_atto"}  # a x4 patchify stem: the last two x2 ups undo half of it each


def smp_expected(arch: str, encoder: str) -> tuple[int, int, dict[str, int]]:
    """(exact, compound, unpaired codes) an architecture gives over an encoder, from its design."""
    stem4 = encoder in X4_STEM
    if arch in ("unet", "manet", "linknet"):  # one x2 up per transition (a x4 stem's two pair at rate 4, split)
        return (5, 0, {})
    if arch == "unetplusplus":  # nested: 11 ups over 5 transitions (a x4 stem's pair at rate 4, split)
        return (11, 0, {})
    if arch == "fpn":  # 3 top-down + 6 seg-block ups, then a x4 head (one x4 transition with a x4 stem)
        return (10, 0, {}) if stem4 else (9, 1, {})
    if arch == "pspnet":  # 4 pyramid bins, then a x8 head
        return (0, 1, {"global-pool": 4})
    if arch == "deeplabv3":  # ASPP image pooling, then a x8 head
        return (0, 1, {"global-pool": 1})
    if arch == "deeplabv3plus":  # ASPP image pooling, a x4 decoder up, a x4 head
        return (1, 1, {"global-pool": 1}) if stem4 else (0, 2, {"global-pool": 1})
    if arch == "pan":  # FPA pyramid (3 ups over its own downs, 1 global branch), 2 GAU ups, x4 head
        return (6, 0, {"global-pool": 1}) if stem4 else (5, 1, {"global-pool": 1})
    if arch == "upernet":  # PPM bins, 3 FPN ups, 3 fuse ups (2 compound), x4 head
        return (5, 2, {"global-pool": 3}) if stem4 else (4, 3, {"global-pool": 3})
    if arch == "segformer":  # MLP decoder: every feature resized to 1/4 (2 compound), then a x4 head
        if stem4:
            return (2, 2, {})
        if encoder in ("mobilenet_v2", "efficientnet-b0"):
            # the decoder also shrinks the 1/2 feature to 1/4: a second 1/2 -> 1/4 down beside the
            # encoder's, which here reads an expanded copy, not the feature itself: the head is ambiguous
            return (1, 2, {"ambiguous": 1})
        return (1, 3, {})  # the encoder's own 1/2 -> 1/4 down reads that feature: one transition
    raise KeyError(arch)


FAST_SMP = [
    ("unet", "resnet18", 64),
    ("fpn", "mobilenet_v2", 64),
    ("deeplabv3plus", "resnet18", 64),
    ("linknet", "resnet18", 64),
    ("pan", "resnet18", 128),
    ("unetplusplus", "mobilenet_v2", 64),
    ("pspnet", "resnet18", 128),  # at 64 the 6x6 bin of an 8x8 feature is a mere size alignment
    ("manet", "tu-regnetx_002", 64),
]


@pytest.mark.parametrize("arch,encoder,size", FAST_SMP)
def test_smp_fast(arch: str, encoder: str, size: int) -> None:
    assert summary(smp_report(arch, encoder, size)) == smp_expected(arch, encoder)


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize(
    "arch", ["unet", "unetplusplus", "manet", "linknet", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "pan",
             "upernet", "segformer"]
)
def test_smp_sweep(arch: str, encoder: str) -> None:
    size = 256 if arch == "upernet" else 128  # UPerNet's 6x6 pyramid bins need a 1/32 feature of >= 6
    assert summary(smp_report(arch, encoder, size)) == smp_expected(arch, encoder)


def test_smp_unet_pairs_each_decoder_stage_with_the_encoder_transition_at_its_resolution() -> None:
    report = smp_report("unet", "resnet18", 64)
    pairs = {p.up.target: [t.name for t in p.transitions] for p in report.pairs}
    assert pairs == {
        "decoder.blocks.0.interpolate": ["encoder.layer4.0.conv1"],
        "decoder.blocks.1.interpolate": ["encoder.layer3.0.conv1"],
        "decoder.blocks.2.interpolate": ["encoder.layer2.0.conv1"],
        "decoder.blocks.3.interpolate": ["encoder.maxpool"],
        "decoder.blocks.4.interpolate": ["encoder.conv1"],
    }
    layer2 = next(t for t in report.transitions if t.name == "encoder.layer2.0.conv1")
    assert [d.target for d in layer2.downs] == ["encoder.layer2.0.conv1", "encoder.layer2.0.downsample.0"]


def test_smp_linknet_transposed_convs_hidden_behind_a_shape_branch_are_found() -> None:
    report = smp_report("linknet", "resnet18", 64)
    assert [p.up.kind for p in report.pairs] == ["convtranspose"] * 5


def test_smp_fpn_one_transition_serves_several_ups_and_the_head_is_compound() -> None:
    report = smp_report("fpn", "resnet18", 64)
    served = Counter(p.transitions[0].name for p in report.pairs if not p.compound)
    assert served == {"encoder.layer4.0.conv1": 2, "encoder.layer3.0.conv1": 3, "encoder.layer2.0.conv1": 4}
    (head,) = [p for p in report.pairs if p.compound]
    assert head.up.target == "segmentation_head.1" and [t.name for t in head.transitions] == [
        "encoder.conv1", "encoder.maxpool"]


def test_smp_deeplabv3plus_image_pooling_is_not_paired() -> None:
    report = smp_report("deeplabv3plus", "resnet18", 64)
    (pooling,) = report.unpaired
    assert pooling.up.in_size == (1, 1) and "global or pyramid pool" in pooling.reason
    assert [name for name, _ in report.ignored] == [pooling.candidates[0]]


TIMM_FAST = {"resnet18": (5, 0, {}), "efficientnet_b0": (5, 0, {}), "convnext_atto": (5, 0, {})}  # its x4 stem pairs at rate 4
TIMM_SWEEP = {
    **{name: (5, 0, {}) for name in (
        "resnet50d", "mobilenetv3_small_100", "mobilenetv2_100", "tf_efficientnet_lite0", "regnetx_002",
        "regnety_002", "vgg11_bn", "densenet121", "mobilevit_xxs", "dla34", "ghostnet_100", "repvgg_a0",
        "rexnet_100", "mixnet_s", "fastvit_t8", "cspdarknet53", "efficientvit_b0", "nf_resnet26", "inception_v3",
        "selecsls42b", "resnest14d", "res2net50_14w_8s")},
    "edgenext_xx_small": (5, 0, {}),  # x4 stems: their two x2 ups pair at rate 4
    "poolformer_s12": (5, 0, {}),
    "hrnet_w18_small": (9, 2, {"ambiguous": 4}),
}


@pytest.mark.parametrize("backbone", list(TIMM_FAST))
def test_zoo_unet_over_timm_fast(backbone: str) -> None:
    report = zoo_report(backbone)
    assert summary(report) == TIMM_FAST[backbone]
    assert not report.warnings


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list(TIMM_SWEEP))
def test_zoo_unet_over_timm_sweep(backbone: str) -> None:
    assert summary(zoo_report(backbone, size=128)) == TIMM_SWEEP[backbone]
