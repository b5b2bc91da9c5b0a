"""On CUDA: IP and IU give the CPU's values and gradients in fp32, bf16 and fp16, and every zoo host with
every family trains a step under bf16 autocast (as the search trains). Skipped without CUDA; run with
`pytest -m gpu` (benchmarks/gpu_check.sh runs them first).
"""

from __future__ import annotations

import pytest
import torch

from indexnas import zoo
from indexnas.indexnet import IndexNet
from indexnas.ops import indexed_pool, indexed_upsample
from indexnas.spec import BASELINE_FAMILIES, LEARNED_FAMILIES
from indexnas.surgery.rewrite import insert_indexnet

DEVICE = "cuda"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# Two roundings apart at most: the devices may add a region's four products in another order.
TOLERANCES = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
}
SHAPES = [(2, 8, 16, 20), (3, 5, 17, 9)]  # even; odd height and width (the last row/column lies outside every region)
MAP_CHANNELS = {"depthwise": None, "holistic": 1}  # None: one map channel per feature channel
# Each zoo host with down/up pairs, and the surgery mode that finds them (dncnn has none).
HOST_MODES = {"dncnn_segnet": "pool", "segnet": "pool", "fastdepth": "stride", "fastdepth_p": "pool",
              "matting": "pool", "unet": "pool"}
FAMILIES = (*LEARNED_FAMILIES, *BASELINE_FAMILIES)


def test_the_gpu_host_list_names_every_zoo_host_with_pairs():
    assert set(HOST_MODES) | {"dncnn"} == set(zoo.list_models())


def _inputs(shape: tuple[int, ...], map_channels: int | None, dtype: torch.dtype) -> list[torch.Tensor]:
    """X, a map at X's size, a pooled-size D, and upstream gradients for IP's and IU's outputs, in ``dtype``."""
    gen = torch.Generator().manual_seed(sum(shape))
    b, c, h, w = shape
    tensors = [
        torch.randn(shape, generator=gen),
        torch.rand(b, map_channels or c, h, w, generator=gen),
        torch.randn(b, c, h // 2, w // 2, generator=gen),
        torch.randn(b, c, h // 2, w // 2, generator=gen),
        torch.randn(shape, generator=gen),
    ]
    return [t.to(dtype) for t in tensors]


def _values_and_gradients(tensors: list[torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    x, index_map, d, grad_pooled, grad_up = (t.to(device) for t in tensors)
    x, index_map, d = (t.requires_grad_() for t in (x, index_map, d))
    pooled = indexed_pool(x, index_map)
    up = indexed_upsample(d, index_map)
    dx, dmap_pool = torch.autograd.grad(pooled, (x, index_map), grad_pooled)
    dd, dmap_up = torch.autograd.grad(up, (d, index_map), grad_up)
    results = dict(pooled=pooled, up=up, dx=dx, dmap_pool=dmap_pool, dd=dd, dmap_up=dmap_up)
    return {name: t.detach().cpu() for name, t in results.items()}


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", list(TOLERANCES), ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("maps", MAP_CHANNELS)
def test_ip_and_iu_on_cuda_equal_the_cpu_in_values_and_gradients(dtype, shape, maps):
    tensors = _inputs(shape, MAP_CHANNELS[maps], dtype)
    expected = _values_and_gradients(tensors, "cpu")
    got = _values_and_gradients(tensors, DEVICE)
    for name, value in expected.items():
        assert got[name].dtype == dtype, name
        torch.testing.assert_close(got[name], value, **TOLERANCES[dtype], msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("host", HOST_MODES)
def test_every_zoo_host_with_every_family_trains_a_step_on_cuda_under_bf16_autocast(host, family):
    torch.manual_seed(0)
    model = zoo.create_model(host, width=0.25)
    example = zoo.example_input(host, size=64, batch=2)
    gm, report = insert_indexnet(model, example, family, HOST_MODES[host], channel_fit="group", flops=False)
    assert any(row.choice == family for row in report.rows), f"{family} was inserted at no pair of {host}"
    gm = gm.to(DEVICE).train()
    optimizer = torch.optim.SGD(gm.parameters(), lr=1e-2)
    indexnets = [m for m in gm.modules() if isinstance(m, IndexNet)]
    before = [p.detach().clone() for m in indexnets for p in m.parameters()]
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        out = gm(example.to(DEVICE))
    loss = out.float().square().mean()
    loss.backward()
    assert out.shape == model(example).shape
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in gm.parameters() if p.grad is not None)
    optimizer.step()
    if family in LEARNED_FAMILIES:
        after = [p.detach() for m in indexnets for p in m.parameters()]
        assert any(not torch.equal(a, b) for a, b in zip(after, before)), "the step left the IndexNets as they were"
