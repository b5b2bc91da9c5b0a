"""What `indexnas search` prints when it ends: the Pareto trials and where everything was written."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from indexnas.search.settings import SearchSettings
from indexnas.search.storage import mask_url


def pareto_rows(study: optuna.Study) -> list[dict]:
    """One row per Pareto-optimal trial: choices, metric, parameters added, GFLOPs, training time."""
    metric = study.user_attrs.get("indexnas", {}).get("primary_metric", "metric")
    rows = []
    for trial in sorted(study.best_trials, key=lambda t: t.values[-2]):  # values: metrics..., params_added, gflops
        choices = trial.user_attrs.get("choices", {})
        rows.append({
            "trial": trial.number,
            "config": trial.user_attrs.get("uniform") or describe_choices(choices),
            metric: trial.values[0],
            "params_added": int(trial.values[-2]),
            "gflops": trial.values[-1],
            "train_s": trial.user_attrs.get("train_seconds", float("nan")),
        })
    return rows


def describe_choices(choices: dict[str, str]) -> str:
    """Mixed per-pair choices in pair order, e.g. 'm2o-nl | keep | o2o-shared'."""
    return " | ".join(choices.values()) if choices else "?"


def print_summary(study: optuna.Study, settings: SearchSettings, wall_seconds: float, report: Path | None) -> None:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    metric = study.user_attrs.get("indexnas", {}).get("primary_metric", "metric")
    print(f"\nstudy {settings.study!r}: {states.count(TrialState.COMPLETE)} completed, "
          f"{states.count(TrialState.FAIL)} failed, {states.count(TrialState.PRUNED)} over budget; "
          f"wall time {wall_seconds / 60:.1f} min")
    print(f"Pareto-optimal trials ({metric} vs parameters added vs GFLOPs):")
    print(f"{'trial':>6}  {metric:>8}  {'params+':>10}  {'GFLOPs':>8}  configuration")
    for row in pareto_rows(study):
        print(f"{row['trial']:>6}  {row[metric]:>8.3f}  {row['params_added']:>10,}  {row['gflops']:>8.3f}  {row['config']}")
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
