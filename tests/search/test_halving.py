"""Multi-fidelity pruning (`--prune halving`): the rung rule on hand-made records, and a tiny study with it on."""

from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from indexnas.errors import UserError
from indexnas.search.halving import (RungRecord, RungReports, keep_at_rung, non_domination_ranks, parse_rungs,
                                      pruned_original, rung_pruned, rung_steps)
from indexnas.search.record import PRUNED_AT, RUNG_SCORES, TrialRecord
from indexnas.search.settings import SearchSettings
from indexnas.search.run import run_search
from indexnas.search.schedule import next_step
from indexnas.tasks.problem import TaskProblem
from paths import ASSETS

MODEL = f"{ASSETS / 'two_stage_denoiser.py'}:build"
METRIC_PARAMS = ("maximize", "minimize")  # (psnr at the rung, parameters added)


def record(number: int, psnr: float, params: int) -> RungRecord:
    return RungRecord(number, (psnr, params))


# --- the rung rule on hand-made records --------------------------------------------------------------


def test_rungs_are_fractions_of_the_budget_strictly_inside_it():
    assert rung_steps(150, (0.5,)) == (75,)
    assert rung_steps(150, (0.25, 0.5)) == (38, 75)
    assert rung_steps(1, (0.5,)) == ()  # a one-step budget has no step before the end to stop at
    assert parse_rungs("0.5, 0.25") == (0.25, 0.5)
    for bad in ("0", "1", "half", "0.5,1.5", ""):
        with pytest.raises(UserError, match="--rungs"):
            parse_rungs(bad)


@pytest.mark.parametrize("bad, message", [
    (dict(prune="hyperband"), "unknown pruning"), (dict(reduction_factor=1), "--reduction-factor"),
    (dict(retrain_seeds=-1), "--retrain-seeds"), (dict(budget_steps=1), "no step before the end"),
])
def test_bad_pruning_and_retraining_settings_are_clear_errors(tmp_path, bad, message):
    with pytest.raises(UserError, match=message):
        tiny(tmp_path, **bad)


def test_non_domination_ranks_peel_fronts_of_metric_against_parameters():
    points = [(25.0, 100), (24.0, 10), (24.0, 100), (23.0, 1000), (26.0, 5000)]
    # fronts: {25/100, 24/10, 26/5000}, then 24/100 (beaten by 25/100), then 23/1000 (beaten by 24/100)
    assert non_domination_ranks(points, METRIC_PARAMS) == [0, 0, 1, 2, 0]


def test_a_trial_in_the_best_half_of_the_rung_trains_on():
    records = [record(0, 24.0, 100), record(1, 23.0, 100), record(2, 22.0, 100)]
    assert keep_at_rung(record(3, 25.0, 100), records, eta=2, directions=METRIC_PARAMS)


def test_a_trial_in_the_worse_half_of_the_rung_is_pruned():
    records = [record(0, 24.0, 100), record(1, 23.0, 100), record(2, 22.0, 100)]
    # two records lie on better fronts: not fewer than 4 / 2
    assert not keep_at_rung(record(3, 22.5, 100), records, eta=2, directions=METRIC_PARAMS)


def test_a_cheap_trial_with_a_middling_score_is_kept_because_nothing_at_its_cost_beats_it():
    records = [record(0, 26.0, 5000), record(1, 25.5, 4000), record(2, 25.0, 3000)]
    assert keep_at_rung(record(3, 23.0, 16), records, eta=2, directions=METRIC_PARAMS)
    # ranked by the metric alone it would be the worst of four
    assert not keep_at_rung(RungRecord(3, (23.0,)), [RungRecord(r.number, r.values[:1]) for r in records], 2,
                            ("maximize",))


def test_no_trial_is_pruned_before_eta_records_exist_at_the_rung():
    worst = record(1, 10.0, 10_000)
    assert keep_at_rung(worst, [], eta=2, directions=METRIC_PARAMS)  # alone at the rung
    assert not keep_at_rung(worst, [record(0, 24.0, 100)], eta=2, directions=METRIC_PARAMS)  # two records
    assert keep_at_rung(worst, [record(0, 24.0, 100)], eta=3, directions=METRIC_PARAMS)  # eta 3 needs three


def test_the_trials_own_earlier_record_is_not_counted_twice():
    records = [record(0, 24.0, 100), record(1, 23.0, 100)]
    assert keep_at_rung(record(1, 23.0, 100), records, eta=3, directions=METRIC_PARAMS)  # 2 records, not 3


class FakeTrial:
    """What RungReports reads and writes on an Optuna trial, in memory."""

    def __init__(self, number: int, user_attrs: dict, study: "FakeStudy") -> None:
        self.number, self.user_attrs, self.study, self.state = number, user_attrs, study, TrialState.RUNNING

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


class FakeStudy:
    def __init__(self) -> None:
        self.trials: list[FakeTrial] = []

    def get_trials(self, deepcopy, states):
        return [t for t in self.trials if t.state in states]

    def add(self, psnr: float | None, params: int, **attrs) -> FakeTrial:
        trial = FakeTrial(len(self.trials), {"params_added": params, "gflops": 1.0, **attrs}, self)
        if psnr is not None:
            trial.user_attrs[RUNG_SCORES.key] = {"5": {"psnr": psnr}}
            trial.state = TrialState.COMPLETE
        self.trials.append(trial)
        return trial


def reports(trial: FakeTrial) -> RungReports:
    return RungReports(trial, ("metric", "params"), {"psnr": "maximize"}, eta=2)


@pytest.mark.parametrize("mark", ["host", "m2o-nl-c"])
def test_the_host_and_the_paper_grid_are_never_pruned_but_their_scores_are_records(mark):
    study = FakeStudy()
    for psnr in (26.0, 25.0, 24.0):
        study.add(psnr, 100)
    grid_row = study.add(None, 100, uniform=mark)
    reports(grid_row)(5, {"psnr": 10.0})  # the worst at the rung: still trains on
    assert TrialRecord.of(grid_row)[RUNG_SCORES] == {"5": {"psnr": 10.0}} and PRUNED_AT not in TrialRecord.of(grid_row)
    kept = study.add(None, 100)
    reports(kept)(5, {"psnr": 24.5})  # 2 of 5 records better: kept because the grid row's record counts
    assert PRUNED_AT not in TrialRecord.of(kept)
    pruned = study.add(None, 100)
    with pytest.raises(optuna.TrialPruned):
        reports(pruned)(5, {"psnr": 23.5})  # 4 of 6 records better (the running trial's among them)
    assert TrialRecord.of(pruned)[PRUNED_AT] == 5 and TrialRecord.of(pruned)[RUNG_SCORES] == {"5": {"psnr": 23.5}}


def test_a_repeat_of_a_configuration_pruned_at_a_rung_is_found_for_pruning_without_training():
    study = FakeStudy()
    over = study.add(None, 100, canonical="a", failure={"kind": "over_budget"})
    stopped = study.add(None, 100, canonical="b", pruned_at=5)
    repeat = study.add(None, 100, canonical="b", pruned_at=5, duplicate_of=stopped.number)
    over.state = stopped.state = repeat.state = TrialState.PRUNED
    asking = study.add(None, 100)
    assert pruned_original(asking, "b") is stopped  # the original, never a repeat of it
    assert pruned_original(asking, "a") is None  # over budget is not a rung's verdict
    assert pruned_original(asking, "c") is None


def test_a_diverged_rung_score_is_no_record_and_is_left_to_the_final_evaluation():
    study = FakeStudy()
    study.add(float("nan"), 10)
    late = study.add(None, 100)
    reports(late)(5, {"psnr": 20.0})  # the NaN is not a record: alone at the rung, it trains on
    diverged = study.add(None, 100)
    reports(diverged)(5, {"psnr": float("nan")})  # not pruned here: the trial fails with its reason at the end
    assert PRUNED_AT not in TrialRecord.of(late) and PRUNED_AT not in TrialRecord.of(diverged)


def test_a_rung_report_without_a_searched_metric_is_a_clear_error():
    trial = FakeStudy().add(None, 100)
    with pytest.raises(UserError, match="no psnr"):
        reports(trial)(5, {"ssim": 0.5})


def test_trials_pruned_at_a_rung_do_not_count_as_over_budget():
    state = {s: 0 for s in TrialState}
    pruned = {**state, TrialState.PRUNED: 100, TrialState.COMPLETE: 3}
    assert next_step(pruned, 4, over=0) == "start"  # pruned at rungs: the study goes on to 4 complete
    assert next_step(pruned, 4, over=100) == "stop"  # over budget: the sampler cannot find a configuration that fits


# --- a tiny study with pruning on ----------------------------------------------------------------------


def tiny(tmp_path: Path, **overrides) -> SearchSettings:
    options = dict(task="denoise", model=MODEL, study="halving", storage=str(tmp_path / "studies.log"),
                   out=str(tmp_path / "run"), trials=4, budget_steps=4, batch_size=4, eval_size=32, progress=False,
                   seed=0, paper_grid=False, warm_start=False, sampler="random", prune="halving", retrain_seeds=0)
    return SearchSettings(**{**options, **overrides})


@pytest.fixture(scope="module")
def halving(tmp_path_factory):
    torch.set_num_threads(1)
    return run_search(tiny(tmp_path_factory.mktemp("halving"), trials=3), TaskProblem)


def test_pruning_stops_trials_at_the_rung_and_the_study_still_completes_the_requested_trials(halving):
    states = [t.state for t in halving.trials]
    assert states.count(TrialState.COMPLETE) == 3
    pruned = [t for t in halving.trials if rung_pruned(t)]
    assert pruned, "with eta 2 and random configurations some trial falls in the worse half"
    for trial in pruned:
        assert TrialRecord.of(trial)[PRUNED_AT] == 2 and trial.user_attrs["train_steps"] == 2
        assert set(TrialRecord.of(trial)[RUNG_SCORES]) == {"2"} and "psnr" in TrialRecord.of(trial)[RUNG_SCORES]["2"]
        assert "checkpoint" not in trial.user_attrs and "metrics" not in trial.user_attrs


def test_completed_trials_keep_their_rung_scores_and_record_the_steps_they_trained(halving):
    for trial in halving.get_trials(states=(TrialState.COMPLETE,)):
        assert set(TrialRecord.of(trial)[RUNG_SCORES]) == {"2"}
        assert trial.user_attrs["train_steps"] == 4


@pytest.mark.slow
def test_the_rung_score_does_not_change_the_training(tmp_path):
    torch.set_num_threads(1)
    options = dict(trials=1, sampler="random")
    scored = run_search(tiny(tmp_path / "on", **options), TaskProblem).trials[0]
    plain = run_search(tiny(tmp_path / "off", prune="off", **options), TaskProblem).trials[0]
    assert scored.user_attrs["choices"] == plain.user_attrs["choices"]
    assert scored.values == pytest.approx(plain.values, abs=1e-6)


class Autoencoder(torch.nn.Module):
    """A user's model with two max-pool / upsample pairs."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.encode = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                    nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.decode = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                    nn.Upsample(scale_factor=2), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def images(seed: int) -> torch.Tensor:
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def error(model: torch.nn.Module) -> dict:
    with torch.no_grad():
        return {"mse": float(torch.nn.functional.mse_loss(model.eval()(images(99)), images(99)))}


def reporting_train(model: torch.nn.Module, budget) -> dict:
    """A user's loop that takes part in pruning: it reports at budget.rungs (the report may stop it)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(1, budget.steps + 1):
        model.train()
        loss = torch.nn.functional.mse_loss(model(images(step)), images(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in budget.rungs:
            budget.report(step, error(model))
    return {"steps": budget.steps}


def user_search(tmp_path: Path, train, trials: int):
    import indexnas

    torch.manual_seed(0)
    return indexnas.search(Autoencoder(), images(0)[:1], train=train, evaluate=error, directions={"mse": "minimize"},
                           trials=trials, storage=str(tmp_path / "s.log"), out=tmp_path / "run", budget_steps=4,
                           prune="halving", paper_grid=False, warm_start=False, report=False, retrain_seeds=0,
                           sampler="random")


@pytest.mark.slow
def test_a_users_train_that_reports_at_the_rungs_is_pruned_like_a_built_in_task(tmp_path):
    study = user_search(tmp_path, reporting_train, trials=4)
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 4
    assert all(set(TrialRecord.of(t)[RUNG_SCORES]) == {"2"} for t in study.trials if t.state != TrialState.FAIL)
    for trial in study.trials:
        if rung_pruned(trial):
            assert trial.user_attrs["train_steps"] == 2


def test_a_users_train_that_never_reports_refuses_pruning(tmp_path):
    with pytest.raises(UserError, match="budget.report"):
        user_search(tmp_path, lambda model, budget: None, trials=1)
