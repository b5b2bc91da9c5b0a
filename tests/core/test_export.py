"""The operators trace under torch.fx and export with torch.export at dynamic sizes."""

import pytest
import torch
from torch import nn

from indexnas.indexnet import build_index_module
from indexnas.ops import indexed_pool, indexed_upsample
from indexnas.spec import all_choices

CHOICES = [str(s) for s in all_choices() if not s.keep]


class TinyIndexedNet(nn.Module):
    """conv -> IndexNet + IP -> conv -> IU (restoring odd sizes) -> conv."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.index = build_index_module(spec, 8)
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        enc, dec = self.index(x)
        y = self.mid(indexed_pool(x, enc))
        return self.head(indexed_upsample(y, dec, ))


def _inputs():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 12, 10, generator=gen), torch.randn(1, 3, 9, 15, generator=gen)


@pytest.mark.parametrize("spec", CHOICES)
def test_fx_trace_shows_ip_and_iu_as_single_nodes_and_matches_eager(spec):
    model = TinyIndexedNet(spec).eval()
    traced = torch.fx.symbolic_trace(model)
    targets = {n.target for n in traced.graph.nodes if n.op == "call_function"}
    assert indexed_pool in targets and indexed_upsample in targets
    for x in _inputs():  # two sizes: nothing baked in
        assert torch.equal(traced(x), model(x))
        assert traced(x).shape[-2:] == x.shape[-2:]


@pytest.mark.parametrize("spec", ["holistic-nl-c", "m2o-nl", "o2o-unshared-c", "o2o-shared-nl", "max", "avg"])
def test_torch_export_with_dynamic_height_and_width(spec):
    model = TinyIndexedNet(spec).eval()
    small, odd = _inputs()
    # Dim.DYNAMIC, not a named Dim: export's solver cannot prove h == 2 * (h // 2) + h % 2.
    dynamic = torch.export.Dim.DYNAMIC
    exported = torch.export.export(model, (small,), dynamic_shapes=({0: dynamic, 2: dynamic, 3: dynamic},))
    for x in (small, odd):
        torch.testing.assert_close(exported.module()(x), model(x))


class TinyRate4Net(nn.Module):
    """conv -> rate-4 IndexNet + IP -> conv -> rate-4 IU -> conv."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.index = build_index_module(spec, 4, rate=4)
        self.head = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        enc, dec = self.index(x)
        return self.head(indexed_upsample(indexed_pool(x, enc, 4), dec, 4))


@pytest.mark.parametrize("spec", ["holistic-nl-c", "m2o", "o2o-shared-nl", "max", "avg"])
def test_at_rate_4_fx_shows_single_nodes_and_export_runs_at_dynamic_sizes(spec):
    model = TinyRate4Net(spec).eval()
    traced = torch.fx.symbolic_trace(model)
    calls = [n for n in traced.graph.nodes if n.target in (indexed_pool, indexed_upsample)]
    assert [n.args[-1] for n in calls] == [4, 4]
    x, odd = torch.randn(2, 3, 16, 12), torch.randn(1, 3, 13, 18)
    dynamic = torch.export.Dim.DYNAMIC
    exported = torch.export.export(model, (x,), dynamic_shapes=({0: dynamic, 2: dynamic, 3: dynamic},))
    for sample in (x, odd):
        assert torch.equal(traced(sample), model(sample))
        torch.testing.assert_close(exported.module()(sample), model(sample))
        assert model(sample).shape[-2:] == sample.shape[-2:]
