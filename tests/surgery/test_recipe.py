"""A rewrite saves as a small JSON recipe, replays onto a fresh model, and its weights load into the replay."""

from __future__ import annotations

import json

import pytest
import torch

from indexnas import zoo
from handwritten_models import SegNetFunctional
from indexnas.cli import main
from indexnas.errors import UserError
from indexnas.surgery import recipe
from indexnas.surgery.rewrite import insert_indexnet


def _fresh(name: str, seed: int):
    torch.manual_seed(seed)
    return zoo.create_model(name, width=0.25).eval()


@pytest.mark.parametrize(
    ("name", "choice", "mode"),
    [
        ("segnet", {"encoder.stage1.pool": "m2o-nl-c", "encoder.stage3.pool": "o2o-modelwise-nl", "*": "holistic"}, "pool"),
        ("fastdepth", "o2o-unshared-nl", "stride"),
    ],
)
def test_recipe_replays_and_state_dict_loads_into_the_replay(tmp_path, name, choice, mode):
    x = zoo.example_input(name, size=48)
    rewritten, report = insert_indexnet(_fresh(name, 0), x, choice, mode, flops=False)
    path = tmp_path / "rewrite.json"
    recipe.save(recipe.from_report(report, model=name), path)
    saved = recipe.load(path)
    assert saved["mode"] == mode and saved["choices"] == report.choices
    assert json.loads(path.read_text())["model"] == name

    replayed, replay_report = recipe.replay(saved, _fresh(name, 1), x, flops=False)
    assert replay_report.choices == report.choices
    weights = tmp_path / "weights.pt"
    recipe.save_state_dict(rewritten, weights)
    replayed.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    with torch.no_grad():
        assert torch.equal(replayed(x), rewritten(x))


def test_a_recipe_for_another_model_is_refused(tmp_path):
    x = zoo.example_input("dncnn_segnet", size=40)
    _, report = insert_indexnet(_fresh("dncnn_segnet", 0), x, "holistic", "pool", flops=False)
    saved = recipe.from_report(report, model="dncnn_segnet")
    with pytest.raises(UserError, match="no pair named encoder.stage1.pool"):
        recipe.replay(saved, SegNetFunctional(), torch.randn(1, 3, 32, 32), flops=False)
    with pytest.raises(UserError, match=r"does not cover pair\(s\) encoder.stage4.pool, encoder.stage5.pool"):
        recipe.replay(saved, _fresh("segnet", 0), zoo.example_input("segnet", size=64), flops=False)


def test_bad_recipe_files_are_user_errors(tmp_path):
    path = tmp_path / "r.json"
    with pytest.raises(UserError, match="cannot read recipe"):
        recipe.load(path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        recipe.load(path)
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UserError, match="not an indexnas recipe"):
        recipe.load(path)
    good = {"format": recipe.FORMAT, "version": 1, "mode": "pool", "choices": {"p": "m2o"}}
    path.write_text(json.dumps({**good, "mode": "sideways"}))
    with pytest.raises(UserError, match="unknown rewrite mode"):
        recipe.load(path)
    path.write_text(json.dumps({**good, "choices": {"p": "m2o-xl"}}))
    with pytest.raises(UserError, match="invalid IndexNet choice"):
        recipe.load(path)
    with pytest.raises(UserError, match="does not exist"):
        recipe.save(good, tmp_path / "missing" / "r.json")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    good = {"format": recipe.FORMAT, "version": 1, "mode": "pool", "choices": {"p": "m2o"}}
    recipe.save(good, path)
    before = path.read_text()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(recipe.json, "dumps", broken)
    with pytest.raises(OSError, match="disk full"):
        recipe.save({**good, "mode": "stride"}, path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary left behind


def test_insert_command_writes_and_replays_a_recipe(tmp_path, capsys):
    out, weights = tmp_path / "r.json", tmp_path / "w.pt"
    args = ["insert", "dncnn_segnet", "--size", "40", "--choice", "o2o-shared-nl", "--no-flops"]
    assert main([*args, "--out", str(out), "--weights", str(weights)]) == 0
    assert "o2o-shared-nl" in capsys.readouterr().out
    assert recipe.load(out)["choices"] == {f"encoder.stage{k}.pool": "o2o-shared-nl" for k in (3, 2, 1)}
    assert main(["insert", "dncnn_segnet", "--size", "40", "--recipe", str(out), "--no-flops", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params_after"] - 7_087_745 == 168
    assert main(["insert", "dncnn_segnet", "--choice", "m2o-xl"]) == 2
    assert "invalid IndexNet choice" in capsys.readouterr().err
    assert main(["insert", "dncnn_segnet", "--size", "40", "--allowed"]) == 0
    assert "all 24" in capsys.readouterr().out  # every choice allowed at each pair, summarised
