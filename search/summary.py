"""What `indexnas search` prints when it ends: the Pareto trials and where everything was written."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from indexnas.search import retrain
from indexnas.search.record import (CHOICES, DUPLICATE_OF, GFLOPS, PARAMS_ADDED, PRUNED_AT, RETRAIN, SCORE_SE_VS_HOST,
                                    SETTINGS, TRAIN_SECONDS, TRAIN_STEPS, UNIFORM, StudyRecord, TrialRecord)
from indexnas.search.settings import SearchSettings
from indexnas.search.storage_urls import mask_url


def trial_dicts(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's trials as plain records (number, state, user_attrs) with their retraining records attached."""
    return retrain.attach(study.user_attrs, [{"number": t.number, "state": t.state.name, "user_attrs": t.user_attrs}
                                             for t in study.get_trials(deepcopy=False)])


def trial_counts(trials: list[dict[str, Any]], budget_steps: int) -> dict[str, int]:
    """What a study's trials cost (plain trial records with their retraining attached, `trial_dicts`): completed
    trials trained in full or answered from the cache, trials pruned at a rung and the steps that saved,
    over-budget and failed trials, retrained front trials and their extra runs, and all training steps used."""
    records = [(t, TrialRecord(t["user_attrs"])) for t in trials]
    complete = [r for t, r in records if t["state"] == "COMPLETE"]
    repeats = sum(DUPLICATE_OF in r for r in complete)
    pruned = [r for t, r in records if t["state"] == "PRUNED"]
    at_rung = [r for r in pruned if PRUNED_AT in r]
    retrained, retrainings, retrain_steps = _retraining_counts(records)
    return {
        "complete": len(complete), "trained": len(complete) - repeats, "repeats": repeats,
        "pruned_at_rung": len(at_rung),
        "steps_saved": sum(budget_steps - (r.get(TRAIN_STEPS) or 0) for r in at_rung
                           if DUPLICATE_OF not in r),  # a pruned repeat saved nothing new
        "over_budget": len(pruned) - len(at_rung), "failed": sum(t["state"] == "FAIL" for t in trials),
        "retrained_trials": retrained, "retrainings": retrainings,
        "train_steps": sum(r.get(TRAIN_STEPS) or 0 for _, r in records) + retrain_steps,
    }


def _retraining_counts(records: list[tuple[dict[str, Any], TrialRecord]]) -> tuple[int, int, int]:
    """(front trials retrained, their extra runs, the training steps of those runs); a repeat counts as its original."""
    retrained = {r.get(DUPLICATE_OF, t["number"]): r[RETRAIN] for t, r in records if RETRAIN in r}
    steps = sum(s or 0 for record in retrained.values() for s in record.get("train_steps", [])[1:])
    return len(retrained), sum(len(r["seeds"]) - 1 for r in retrained.values()), steps


def describe_counts(counts: dict[str, int]) -> str:
    """The counts as one sentence, e.g. for the end of `indexnas search` and the report."""
    return (f"{counts['complete']} completed ({counts['trained']} trained in full, {counts['repeats']} repeats answered "
            f"from the cache, not trained), {counts['pruned_at_rung']} pruned at a rung ({counts['steps_saved']:,} "
            f"training steps saved), {counts['over_budget']} over budget, {counts['failed']} failed; "
            f"{counts['retrained_trials']} Pareto-optimal trials retrained with {counts['retrainings']} more runs; "
            f"{counts['train_steps']:,} training steps in all")


def pareto_rows(study: optuna.Study) -> list[dict]:
    """One row per Pareto-optimal trial (repeats answered from the cache left out: their original is
    listed): choices, metric and its paired standard error against the host, its mean, sd and count over
    seeds where the front was retrained (search.retrain), parameters added, GFLOPs, time."""
    metric = StudyRecord.of(study).get(SETTINGS, {}).get("primary_metric", "metric")
    spreads = {t["number"]: TrialRecord(t["user_attrs"]).get(RETRAIN, {}) for t in trial_dicts(study)}
    rows = []
    best = [(t, TrialRecord.of(t)) for t in study.best_trials]
    originals = [(t, r) for t, r in best if DUPLICATE_OF not in r]
    for trial, attrs in sorted(originals, key=lambda pair: (pair[1].get(PARAMS_ADDED, 0), pair[0].number)):
        spread = spreads.get(trial.number, {})
        rows.append({
            "trial": trial.number,
            "config": attrs.get(UNIFORM) or describe_choices(attrs.get(CHOICES, {})),
            metric: trial.values[0],
            "se": attrs.get(SCORE_SE_VS_HOST, float("nan")),
            "mean": spread.get("mean", float("nan")), "sd": spread.get("sd", float("nan")), "n": spread.get("n", 1),
            "params_added": int(attrs.get(PARAMS_ADDED, 0)),
            "gflops": attrs.get(GFLOPS, float("nan")),
            "train_s": attrs.get(TRAIN_SECONDS, float("nan")),
        })
    return rows


def describe_choices(choices: dict[str, str]) -> str:
    """Mixed per-pair choices in pair order, e.g. 'm2o-nl | keep | o2o-shared'."""
    return " | ".join(choices.values()) if choices else "?"


def print_summary(study: optuna.Study, settings: SearchSettings, wall_seconds: float, report: Path | None) -> None:
    attrs = StudyRecord.of(study).get(SETTINGS, {})
    metric = attrs.get("primary_metric", "metric")
    counts = trial_counts(trial_dicts(study), settings.budget_steps)
    print(f"\nstudy {settings.study!r}: {describe_counts(counts)}; wall time {wall_seconds / 60:.1f} min")
    print(f"Pareto-optimal trials ({' vs '.join(attrs.get('objectives', [metric]))}); "
          f"'+-' is the standard error of the difference to the host over the validation items; "
          f"'mean +- sd (n)' is over training seeds (the trial's own run and --retrain-seeds more):")
    print(f"{'trial':>6}  {metric:>8}  {'+-':>6}  {'mean +- sd (n)':>20}  {'params+':>10}  {'GFLOPs':>8}  configuration")
    for row in pareto_rows(study):
        spread = f"{row['mean']:.3f} +- {row['sd']:.3f} ({row['n']})" if row["n"] > 1 else "-"
        print(f"{row['trial']:>6}  {row[metric]:>8.3f}  {row['se']:>6.3f}  {spread:>20}  {row['params_added']:>10,}  "
              f"{row['gflops']:>8.3f}  {row['config']}")
    print(f"\nstorage: {mask_url(settings.storage)} (study {settings.study!r})")
    print(f"weights: {settings.out_dir / 'checkpoints'} (Pareto-optimal trials)")
    if report is not None:
        print(f"report:  {report}")
    print(f"browse:  optuna-dashboard {mask_url(_dashboard_url(settings.storage))}")


def _dashboard_url(storage: str) -> str:
    return storage if "://" in storage else str(Path(storage).resolve())


class Progress:
    """The study-level line after each trial: trials complete of requested, best so far, elapsed, ETA."""

    def __init__(self, study: optuna.Study, wanted: int) -> None:
        self.study, self.wanted = study, wanted
        self.start = time.perf_counter()
        self.done_before = self.reported = len(self._complete())

    def _complete(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def line(self) -> str:
        complete = self._complete()
        done, ran = len(complete), len(complete) - self.done_before
        elapsed = time.perf_counter() - self.start
        attrs = StudyRecord.of(self.study).get(SETTINGS, {})
        metric, direction = attrs.get("primary_metric", "metric"), attrs.get("direction", "maximize")
        text = f"study: {min(done, self.wanted)}/{self.wanted} trials complete"
        if complete:
            pick = max if direction == "maximize" else min
            best = pick(complete, key=lambda t: t.values[0])
            text += f", best {metric} {best.values[0]:.4g} (trial {best.number})"
        text += f", elapsed {_duration(elapsed)}"
        if 0 < ran and done < self.wanted:
            text += f", ETA {_duration(elapsed / ran * (self.wanted - done))}"
        return text

    def report(self) -> None:
        """Log the line when a trial has completed since the last one (pruned and failed trials say their own)."""
        done = len(self._complete())
        if done != self.reported:
            self.reported = done
            logging.getLogger("indexnas.search").info("%s", self.line())


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
