"""What `indexnas search` prints when it ends: the Pareto trials and where everything was written."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from indexnas.search.cache import DUPLICATE_ATTR
from indexnas.search.settings import SearchSettings
from indexnas.search.storage import mask_url


def pareto_rows(study: optuna.Study) -> list[dict]:
    """One row per Pareto-optimal trial (repeats answered from the cache left out: their original is
    listed): choices, metric and its paired standard error against the host, parameters added, GFLOPs, time."""
    metric = study.user_attrs.get("indexnas", {}).get("primary_metric", "metric")
    rows = []
    best = [t for t in study.best_trials if DUPLICATE_ATTR not in t.user_attrs]
    for trial in sorted(best, key=lambda t: (t.user_attrs.get("params_added", 0), t.number)):
        choices = trial.user_attrs.get("choices", {})
        rows.append({
            "trial": trial.number,
            "config": trial.user_attrs.get("uniform") or describe_choices(choices),
            metric: trial.values[0],
            "se": trial.user_attrs.get("score_se_vs_host", float("nan")),
            "params_added": int(trial.user_attrs.get("params_added", 0)),
            "gflops": trial.user_attrs.get("gflops", float("nan")),
            "train_s": trial.user_attrs.get("train_seconds", float("nan")),
        })
    return rows


def describe_choices(choices: dict[str, str]) -> str:
    """Mixed per-pair choices in pair order, e.g. 'm2o-nl | keep | o2o-shared'."""
    return " | ".join(choices.values()) if choices else "?"


def print_summary(study: optuna.Study, settings: SearchSettings, wall_seconds: float, report: Path | None) -> None:
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    repeats = sum(t.state == TrialState.COMPLETE and DUPLICATE_ATTR in t.user_attrs for t in trials)
    attrs = study.user_attrs.get("indexnas", {})
    metric = attrs.get("primary_metric", "metric")
    print(f"\nstudy {settings.study!r}: {states.count(TrialState.COMPLETE)} completed ({repeats} of them repeats "
          f"answered from the cache, not trained), {states.count(TrialState.FAIL)} failed, "
          f"{states.count(TrialState.PRUNED)} over budget; wall time {wall_seconds / 60:.1f} min")
    print(f"Pareto-optimal trials ({' vs '.join(attrs.get('objectives', [metric]))}); "
          f"'+-' is the standard error of the difference to the host over the validation items:")
    print(f"{'trial':>6}  {metric:>8}  {'+-':>6}  {'params+':>10}  {'GFLOPs':>8}  configuration")
    for row in pareto_rows(study):
        print(f"{row['trial']:>6}  {row[metric]:>8.3f}  {row['se']:>6.3f}  {row['params_added']:>10,}  "
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
        attrs = self.study.user_attrs.get("indexnas", {})
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
