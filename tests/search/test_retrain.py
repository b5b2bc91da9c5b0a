"""Retraining the final Pareto front with more seeds (`--retrain-seeds K`): n = K + 1 scores per front trial,
seeds no trial uses, idempotent on resume, a repeat from the cache pointing at its original, and the
spread shown by the summary and the report."""

import math
import statistics
from pathlib import Path

import pytest
import torch


from indexnas.reports import write_report
from indexnas.reports.frame import trials_frame
from indexnas.reports.html import beyond_spread
from indexnas.reports.source import results_from_study
from indexnas.search.record import RETRAIN, StudyRecord, TrialRecord, retraining, retrainings, write_study
from indexnas.search.retrain import attach, front_trials, retrain_seed
from indexnas.search.settings import SearchSettings
from indexnas.search.run import run_search
from indexnas.search.summary import print_summary
from indexnas.tasks.problem import TaskProblem
from paths import ASSETS

MODEL = f"{ASSETS / 'two_stage_denoiser.py'}:build"
K = 2


def tiny(tmp_path: Path, **overrides) -> SearchSettings:
    options = dict(task="denoise", model=MODEL, study="retrain", storage=str(tmp_path / "studies.log"),
                   out=str(tmp_path / "run"), trials=2, budget_steps=2, batch_size=4, eval_size=32, progress=False,
                   seed=0, warm_start=False, retrain_seeds=K)
    return SearchSettings(**{**options, **overrides})


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    torch.set_num_threads(1)
    tmp_path = tmp_path_factory.mktemp("retrain")
    return tmp_path, run_search(tiny(tmp_path), TaskProblem)


def stored(study) -> dict[int, dict]:
    return retrainings(study.user_attrs)


def test_every_front_trial_holds_k_plus_one_scores_with_its_own_run_first(retrained):
    _, study = retrained
    front = front_trials(study)
    assert front and set(stored(study)) == {t.number for t in front}
    for trial in front:
        record = stored(study)[trial.number]
        assert record["seeds"][0] == trial.user_attrs["seed"] and record["metrics"][0] == trial.user_attrs["metrics"]
        assert record["seeds"][1:] == [retrain_seed(0, trial.number, k) for k in range(1, K + 1)]
        assert len(record["metrics"]) == record["n"] == K + 1 and not record["failures"]
        scores = [m["psnr"] for m in record["metrics"]]
        assert record["mean"] == pytest.approx(statistics.mean(scores))
        assert record["sd"] == pytest.approx(statistics.stdev(scores))
        assert len(set(scores)) > 1, "another seed is another draw"


def test_retrain_seeds_are_distinct_from_every_trial_seed_and_from_each_other():
    trial_seeds = {0 + 1 + number for number in range(10_000)}
    retrain = [retrain_seed(0, number, k) for number in range(10_000) for k in (1, 2, 3)]
    assert not trial_seeds & set(retrain) and len(set(retrain)) == len(retrain)


def test_a_rerun_retrains_nothing_stored_and_an_interrupted_retraining_resumes(retrained, caplog):
    tmp_path, study = retrained
    before = stored(study)
    with caplog.at_level("INFO", logger="indexnas.search"):
        run_search(tiny(tmp_path), TaskProblem)
    assert stored(study) == before and "retrained with seed" not in caplog.text
    number, record = next(iter(before.items()))
    cut = {**record, "seeds": record["seeds"][:2], "metrics": record["metrics"][:2],
           "train_seconds": record["train_seconds"][:2], "train_steps": record["train_steps"][:2]}
    write_study(study, retraining(number), cut)  # as if stopped after the first extra seed
    caplog.clear()
    with caplog.at_level("INFO", logger="indexnas.search"):
        run_search(tiny(tmp_path), TaskProblem)
    resumed = stored(study)[number]
    assert resumed["seeds"] == record["seeds"] and resumed["metrics"][:2] == record["metrics"][:2]
    assert caplog.text.count("retrained with seed") == 1


def test_no_retraining_with_zero_seeds(tmp_path):
    torch.set_num_threads(1)
    study = run_search(tiny(tmp_path, trials=1, retrain_seeds=0, paper_grid=False), TaskProblem)
    assert not stored(study)


def test_a_repeat_from_the_cache_points_at_its_originals_record():
    study_attrs = {"indexnas:retrain:3": {"mean": 24.0, "sd": 0.2, "n": 3}, "indexnas": {}}
    trials = [{"number": 3, "user_attrs": {}}, {"number": 7, "user_attrs": {"duplicate_of": 3}},
              {"number": 8, "user_attrs": {}}]
    original, repeat, other = attach(study_attrs, trials)
    assert (TrialRecord(original["user_attrs"])[RETRAIN] == TrialRecord(repeat["user_attrs"])[RETRAIN]
            == StudyRecord(study_attrs)[retraining(3)])
    assert "retrain" not in other["user_attrs"] and trials[0]["user_attrs"] == {}  # the input is left as it was


def test_the_summary_prints_the_front_with_mean_sd_and_runs(retrained, capsys):
    tmp_path, study = retrained
    print_summary(study, tiny(tmp_path), 1.0, None)
    out = capsys.readouterr().out
    front = len(front_trials(study))
    assert f"{front} Pareto-optimal trials retrained with {front * K} more runs" in out
    record = stored(study)[front_trials(study)[0].number]
    assert f"{record['mean']:.3f} +- {record['sd']:.3f} (3)" in out


def test_the_report_shows_the_spread_in_its_tables_and_figures(retrained):
    tmp_path, study = retrained
    frame = trials_frame(results_from_study(study))
    front = frame[frame["pareto"]]
    assert (front["seed_n"] == K + 1).all() and front["seed_sd"].notna().all()
    assert (frame.loc[~frame["pareto"], "seed_n"] == 1).all()
    page = write_report(study, tmp_path / "report").read_text()
    record = stored(study)[front_trials(study)[0].number]
    assert "over seeds: mean ± sd (n)" in page and f"± {record['sd']:.2g} (3)" in page
    assert "mean ± sd over training seeds" in page  # the figures' caption: error bars
    front_size = len(front_trials(study))
    assert f"{front_size} Pareto-optimal trials retrained with {front_size * K} more runs" in page  # the counts


def test_dominance_beyond_the_spread_needs_the_whole_interval_to_be_better():
    def trial(number, uniform, score, params, mean=math.nan, sd=math.nan, n=1):
        return {"number": number, "state": "COMPLETE", "uniform": uniform, "metric:psnr": score,
                "params_added": params, "seed_mean": mean, "seed_sd": sd, "seed_n": n, "pareto": uniform is None}

    import pandas as pd

    frame = pd.DataFrame([trial(0, "m2o", 24.0, 100), trial(1, "holistic", 25.0, 100),
                          trial(2, None, 25.2, 50, mean=24.9, sd=0.3, n=3)])
    frame.attrs.update(primary_metric="psnr", metric_direction="maximize")
    claims = beyond_spread(frame)
    assert len(claims) == 1 and "#2" in claims[0] and "m2o" in claims[0]
    assert "holistic" not in claims[0]  # 24.9 - 0.3 is not above holistic's 25.0
