"""What `indexnas search` prints when it ends: the Pareto trials and where everything was written."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from indexnas.search.settings import SearchSettings
from indexnas.search.storage import mask_url


def pareto_rows(study: optuna.Study) -> list[dict]:
    """One row per Pareto-optimal trial: choices, metric, parameters added, GFLOPs, training time."""
    metric = study.user_attrs.get("indexnas", {}).get("primary_metric", "metric")
    rows = []
    for trial in sorted(study.best_trials, key=lambda t: t.values[1]):
        choices = trial.user_attrs.get("choices", {})
        rows.append({
            "trial": trial.number,
            "config": trial.user_attrs.get("uniform") or describe_choices(choices),
            metric: trial.values[0],
            "params_added": int(trial.values[1]),
            "gflops": trial.values[2],
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
