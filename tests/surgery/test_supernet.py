"""The supernet (surgery/supernet.py): any active path is the stand-alone rewrite of that configuration."""

import random

import pytest
import torch

from indexnas import cost
from indexnas import zoo
from indexnas.errors import UserError
from indexnas.search.oneshot import draw_path
from indexnas.search.space import SearchSpace
from indexnas.surgery.supernet import Supernet


def supernet_of(space: SearchSpace) -> Supernet:
    return Supernet(space.host, space.graph, space.report, space.mode)


def _space(name: str, mode: str, channels: int) -> SearchSpace:
    torch.manual_seed(0)
    return SearchSpace(zoo.create_model(name, width=0.25), torch.randn(1, channels, 64, 64), mode)


@pytest.fixture(scope="module")
def demo_host():
    """The demo's host (dncnn_segnet, width 0.25: max pool / max unpool pairs) in pool mode."""
    space = _space("dncnn_segnet", "pool", 1)
    return space, supernet_of(space)


@pytest.fixture(scope="module")
def strided_host():
    """fastdepth (width 0.25) in stride mode: every down a stride-2 convolution, every up an interpolation."""
    space = _space("fastdepth", "stride", 3)
    return space, supernet_of(space)


def configurations(space: SearchSpace) -> dict[str, dict[str, str]]:
    names = [s.name for s in space.spaces]
    mixed = ["keep", "avg", "o2o-modelwise-nl", "m2o", "holistic-nl-c"]
    return {
        "all keep": {n: "keep" for n in names},
        "uniform holistic": {n: "holistic" for n in names},
        "uniform m2o-nl-c": {n: "m2o-nl-c" for n in names},
        "mixed keep/baseline/modelwise/learned": {n: mixed[i % len(mixed)] for i, n in enumerate(names)},
        "modelwise at two pairs": {n: ("o2o-modelwise-c" if i < 2 else "max") for i, n in enumerate(names)},
    }


def _same_outputs(supernet: Supernet, standalone: torch.nn.Module, channels: int) -> None:
    x = torch.randn(2, channels, 48, 56, generator=torch.Generator().manual_seed(1))
    for training in (True, False):  # train mode: batch statistics; eval mode: the (shared) running ones
        supernet.train(training)
        standalone.train(training)
        with torch.no_grad():
            torch.testing.assert_close(supernet(x), standalone(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("host", ["demo_host", "strided_host"])
@pytest.mark.parametrize("label", ["all keep", "uniform holistic", "uniform m2o-nl-c",
                                   "mixed keep/baseline/modelwise/learned", "modelwise at two pairs"])
def test_the_active_path_with_its_weights_copied_is_the_standalone_rewrite(host, label, request):
    space, supernet = request.getfixturevalue(host)
    choices = configurations(space)[label]
    supernet.activate(choices)
    standalone = space.rewrite(choices).model
    standalone.load_state_dict(supernet.path.state_dict())  # strict: the same keys, the same shapes
    _same_outputs(supernet, standalone, space.inputs[0].shape[1])
    assert supernet.params_added() == cost.count_parameters(standalone) - space.params_before


@pytest.mark.parametrize("host", ["demo_host", "strided_host"])
def test_standalone_weights_copied_into_the_supernet_give_its_outputs_too(host, request):
    space, supernet = request.getfixturevalue(host)
    choices = configurations(space)["mixed keep/baseline/modelwise/learned"]
    torch.manual_seed(5)
    standalone = space.rewrite(choices).model
    supernet.activate(choices)
    x = torch.randn(2, space.inputs[0].shape[1], 48, 56)
    assert not torch.allclose(supernet.eval()(x), standalone.eval()(x))  # other index weights: the copy matters
    supernet.path.load_state_dict(standalone.state_dict())  # into the shared modules
    _same_outputs(supernet, standalone, space.inputs[0].shape[1])


def test_keep_in_stride_mode_is_the_host_itself(strided_host):
    space, supernet = strided_host
    supernet.activate({})
    host = space.graph
    host.load_state_dict(supernet.graph.state_dict())
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(supernet.eval()(x), host.eval()(x), rtol=0, atol=0)


def test_paths_share_the_host_weights_and_each_choice_has_its_own_index_module(demo_host):
    space, supernet = demo_host
    names = [s.name for s in space.spaces]
    supernet.activate({n: "holistic" for n in names})
    first = supernet.path
    supernet.activate({n: "m2o" for n in names})
    shared = [k for k in first.state_dict() if not k.startswith("indexnet.")]
    for key in shared:
        assert first.state_dict()[key].data_ptr() == supernet.path.state_dict()[key].data_ptr()
    assert first.get_submodule(f"indexnet.{names[0].replace('.', '_')}") is not \
        supernet.path.get_submodule(f"indexnet.{names[0].replace('.', '_')}")
    bank_params = sum(p.numel() for p in supernet.parameters())
    assert bank_params > cost.count_parameters(supernet.graph)  # the index modules of every choice are the supernet's


def test_training_with_sampled_paths_draws_a_path_per_batch_and_updates_what_it_used(demo_host):
    space, supernet = demo_host
    rng = random.Random(0)
    supernet.train().sample_paths(lambda: draw_path(space.spaces, supernet, rng))
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.1)
    seen = []
    try:
        for _ in range(6):
            optimizer.zero_grad(set_to_none=True)
            supernet(torch.randn(2, 1, 32, 32)).square().mean().backward()
            seen.append(dict(supernet.choices))
            used = {id(p) for p in supernet.path.parameters()}
            assert all((p.grad is not None) == (id(p) in used) for p in supernet.parameters() if p.requires_grad)
            optimizer.step()
    finally:
        supernet.sample_paths(None)
    assert len({tuple(c.values()) for c in seen}) > 1
    drawn = random.Random(0)
    assert [draw_path(space.spaces, supernet, drawn) for _ in range(6)] == seen  # seeded: the same draws again


def test_a_path_the_space_does_not_hold_is_a_clear_error(demo_host):
    space, supernet = demo_host
    with pytest.raises(UserError, match="no pair named"):
        supernet.activate({"nowhere": "holistic"})
    with pytest.raises(UserError, match="two modelwise choices"):
        supernet.activate({s.name: v for s, v in zip(space.spaces, ("o2o-modelwise", "o2o-modelwise-nl"))})
    with pytest.raises(UserError, match="holds no"):
        supernet.activate({space.spaces[0].name: "holistic@enc=softmax,dec=sigmoid"})


@pytest.mark.parametrize("style", ["ResUNetSE", "CompoundHead", "UNetTransposed"])
def test_other_styles_residual_compound_and_transposed_paths_are_the_standalone_rewrite(style):
    """A residual block's parallel strided downs (stride mode), a compound x4 up, transposed-conv ups (modulated)."""
    import handwritten_models

    torch.manual_seed(0)
    space = SearchSpace(getattr(handwritten_models, style)(), torch.randn(1, 3, 32, 32), "stride")
    supernet = supernet_of(space)
    drawn = random.Random(0)
    for choices in [{s.name: "holistic-nl" for s in space.spaces}, *(draw_path(space.spaces, supernet, drawn) for _ in range(3))]:
        supernet.activate(choices)
        standalone = space.rewrite(choices).model
        standalone.load_state_dict(supernet.path.state_dict())
        _same_outputs(supernet, standalone, 3)
        assert supernet.params_added() == cost.count_parameters(standalone) - space.params_before


def test_decoder_mode_paths_are_the_standalone_rewrite_too():
    """Decoder mode keeps the downs and rewrites the ups only: the same mechanism, nothing mode-specific."""
    space = _space("dncnn_segnet", "decoder", 1)
    supernet = supernet_of(space)
    for label, choices in configurations(space).items():
        supernet.activate(choices)
        standalone = space.rewrite(choices).model
        standalone.load_state_dict(supernet.path.state_dict())
        _same_outputs(supernet, standalone, 1)
        assert supernet.params_added() == cost.count_parameters(standalone) - space.params_before, label
