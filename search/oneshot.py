"""`--strategy oneshot`: train one weight-sharing supernet, score configurations with it, train its front for real.

After the warm host (as for every strategy), the supernet (surgery/supernet.py) trains once from the warm
host for `SearchSettings.supernet_steps`, one path drawn per batch. Configurations are then scored with the
shared weights after BatchNorm recalibration (`Problem.path_scorer`): the host, the paper's uniform configurations
(unless `paper_grid` is off), and `oneshot_candidates` more proposed by an in-memory multi-objective TPE
study over (supernet score, parameters added); the whole space (~13,000 configurations on the demo host)
at seconds a score is out of reach on a CPU. The Pareto set under that score is enqueued into the real study as
ordinary trials (user attributes ``oneshot_score``, and ``uniform`` for a grid row) for `schedule.work` to
train stand-alone, so caching, checkpoints and reports work unchanged. What the supernet cost and every
score are stored as the study attribute ``indexnas:oneshot``; its weights as ``supernet.pt`` under --out, so
a resumed study neither retrains nor rescores.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import optuna
from torch import nn

from indexnas.errors import UserError, describe
from indexnas.spec import IndexSpec, paper_variants
from indexnas.search import pair_space
from indexnas.search.canonical import configuration_key
from indexnas.search.problem import Budget, MetricNotFinite
from indexnas.search.record import ONESHOT, ONESHOT_SCORE, UNIFORM, StudyRecord, enqueue, write_study
from indexnas.search.settings import SearchSettings
from indexnas.search.locks import study_lock
from indexnas.search.optuna_private import storage_of

if TYPE_CHECKING:
    from indexnas.surgery.supernet import Supernet

log = logging.getLogger("indexnas.search")
SUPERNET_FILE = "supernet.pt"
RECALIBRATION = 64  # samples a path's BatchNorm statistics are re-estimated over (a trial's final model: 256)


def enqueue_front(study: optuna.Study, context: Any) -> None:
    """Train or load the supernet and score (unless the study stores its scores), enqueue the front under
    that score, and bound ``context.settings.trials`` (in place: the caller's settings) by the front's size.
    The scoring runs under the study lock, so two machines starting one study train one supernet."""
    with study_lock(storage_of(study), study.study_name):  # another process starting the same study waits, then reads
        stored = StudyRecord.of(study).get(ONESHOT)
        if stored is None:
            stored = score_space(context)
            write_study(study, ONESHOT, stored)
    front = [stored["scored"][i] for i in spread(stored["front"], context.settings.trials)]
    for row in front:  # again on a resume: a crash may have come between storing and enqueueing
        params = pair_space.params_for(row["choices"], context.spaces)
        enqueue(study, params, {ONESHOT_SCORE: row["score"], **({UNIFORM: row["label"]} if row["label"] else {})})
    context.settings.trials = min(context.settings.trials, len(front))
    log.info("one-shot: %d configurations scored by the supernet, %d on its front; training %d stand-alone",
             len(stored["scored"]), len(stored["front"]), context.settings.trials)


def score_space(context: Any) -> dict[str, Any]:
    """Train (or load) the supernet, score the host, the grid and the candidates; what to store."""
    settings, problem = context.settings, context.problem
    score = problem.path_scorer(RECALIBRATION)
    supernet, facts = trained_supernet(context)
    primary, direction = next(iter(problem.directions.items()))
    scorer = _Scorer(supernet, score, context.pairs)
    start = time.perf_counter()
    grid = paper_variants() if settings.paper_grid else []
    for label, choice in [("host", IndexSpec("keep")), *((str(s), s) for s in grid)]:
        choices = pair_space.uniform(context.spaces, choice)
        if pair_space.params_for(choices, context.spaces) is not None:
            scorer.score({n: str(s) for n, s in choices.items()}, label)
    search_candidates(scorer, context.spaces, settings, direction)
    scored = scorer.rows
    front = pareto_front([(row["score"] if direction == "maximize" else -row["score"], -row["params_added"])
                          for row in scored])
    front.sort(key=lambda i: scored[i]["params_added"])
    return {**facts, "score_seconds": time.perf_counter() - start, "configurations_scored": len(scored),
            "candidates": settings.oneshot_candidates, "candidate_sampler": "tpe", "metric": primary,
            "scored": scored, "front": front}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (both coordinates larger is better: >= in both, > in one)."""
    return [i for i, (a, b) in enumerate(points)
            if not any(c >= a and d >= b and (c > a or d > b) for c, d in points)]


def spread(front: list[int], limit: int) -> list[int]:
    """At most ``limit`` of the front (ordered by parameters), evenly spaced, both ends kept."""
    if len(front) <= limit:
        return front
    if limit == 1:
        return front[:1]
    picks = sorted({round(k * (len(front) - 1) / (limit - 1)) for k in range(limit)})
    return [front[k] for k in picks]


class _Scorer:
    """Each configuration's supernet score (its path active, BatchNorm recalibrated, then evaluated), once
    per canonical configuration (aliases share a score: `search.canonical`)."""

    def __init__(self, supernet: Supernet, score: Callable[[nn.Module], float], pairs: list[dict[str, Any]]) -> None:
        self.supernet, self.path_score, self.pairs = supernet, score, pairs
        self.rows: list[dict[str, Any]] = []
        self.by_key: dict[str, dict[str, Any]] = {}

    def score(self, choices: Mapping[str, str], label: str | None = None) -> dict[str, Any] | None:
        """The configuration's row; None when its path gives no finite score (it is then left out)."""
        key = configuration_key(choices, self.pairs)
        if key in self.by_key:
            return self.by_key[key]
        self.supernet.activate(choices)
        try:
            value = self.path_score(self.supernet)
        except MetricNotFinite as error:
            log.warning("one-shot: %s scores nothing with the shared weights (%s); left out", label or dict(choices), error)
            return None
        row = {"choices": dict(choices), "label": label, "score": value, "params_added": self.supernet.params_added()}
        self.rows.append(row)
        self.by_key[key] = row
        return row


def search_candidates(scorer: _Scorer, spaces: list[pair_space.PairSpace], settings: SearchSettings,
                      direction: str) -> None:
    """Score ``oneshot_candidates`` more configurations, proposed by an in-memory multi-objective TPE study
    over (supernet score, parameters added) that starts from what is already scored. TPE rather than NSGA-II:
    at ~100 evaluations NSGA-II's population of 50 would barely get past its random first generation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=settings.seed, multivariate=True, group=True)
    study = optuna.create_study(directions=[direction, "minimize"], sampler=sampler)
    for row in scorer.rows:  # what the grid taught, as finished trials
        params = pair_space.params_for(row["choices"], spaces)
        distributions = {name: optuna.distributions.CategoricalDistribution(
            pair_space.modelwise_variants(spaces) if name == pair_space.MODELWISE_PARAM
            else next(s.choices for s in spaces if s.name == name)) for name in params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                  values=[row["score"], row["params_added"]]))
    wanted, asked = len(scorer.rows) + settings.oneshot_candidates, 0
    while len(scorer.rows) < wanted and asked < 20 * max(1, settings.oneshot_candidates):
        trial, asked = study.ask(), asked + 1
        choices = {name: str(spec) for name, spec in pair_space.suggest_choices(trial, spaces).items()}
        try:
            row = scorer.score(choices)
        except UserError:  # pairs sharing a transition given different choices: not a model
            row = None
        if row is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        study.tell(trial, [row["score"], row["params_added"]])
        if len(scorer.rows) % 10 == 0:
            log.info("one-shot: %d configurations scored", len(scorer.rows))


def trained_supernet(context: Any) -> tuple[Supernet, dict[str, Any]]:
    """The supernet trained from the warm host (or its saved weights from an interrupted run) and its cost."""
    from indexnas.seeding import seed_everything
    from indexnas.search.checkpoints import load_warm_host, save_or_stop
    from indexnas.surgery.supernet import Supernet

    settings, problem = context.settings, context.problem
    seed_everything(settings.seed)  # the index modules' initial weights
    space = context.space
    supernet = Supernet(space.host, space.graph, space.report, space.mode)
    path = settings.out_dir / SUPERNET_FILE
    if path.exists():
        facts = load_warm_host(path, settings, supernet, what="supernet")
        log.info("one-shot: supernet weights loaded from %s (trained %d steps)", path, facts["steps"])
        return supernet, facts
    steps = settings.supernet_steps
    log.info("one-shot: training the supernet from the warm host (%d steps, one path drawn per batch)", steps)
    drawn = random.Random(settings.seed)
    supernet.sample_paths(lambda: draw_path(context.spaces, supernet, drawn))
    start = time.perf_counter()
    try:
        trained = problem.train(supernet, Budget(steps, None, "supernet", settings.progress, seed=settings.seed)) or {}
    except UserError:
        raise
    except Exception as error:  # diverged or out of memory: one message, as for the warm host
        raise UserError(f"training the one-shot supernet failed: {describe(error)}",
                        "lower --lr or --oneshot-steps (or --batch-size when out of memory), or search with "
                        "--strategy trials") from error
    finally:
        supernet.sample_paths(None)
    facts = {"steps": trained.get("steps", steps), "train_seconds": time.perf_counter() - start}
    save_or_stop({"state_dict": supernet.state_dict(), "summary": facts, "identity": settings.identity()}, path,
                 "the supernet's weights")
    return supernet, facts


def draw_path(spaces: list[pair_space.PairSpace], supernet: Supernet, rng: random.Random) -> dict[str, str]:
    """One path of supernet training: a uniform choice per pair, independently, and one o2o-modelwise variant
    for all pairs that pick it; pairs sharing a transition are drawn again until they agree (a rewrite gives
    a transition one choice)."""
    from indexnas.surgery import compat

    variants = pair_space.modelwise_variants(spaces)
    for _ in range(100):
        picked = {space.name: rng.choice(space.choices) for space in spaces}
        variant = rng.choice(variants) if pair_space.MODELWISE in picked.values() else None
        choices = {name: variant if choice == pair_space.MODELWISE else choice for name, choice in picked.items()}
        try:
            compat.resolve(supernet.options, {**choices, "*": "keep"})
        except UserError:
            continue
        return choices  # type: ignore[return-value]
    raise UserError("could not draw a path whose pairs agree on their shared transitions in 100 tries",
                    "search this model with --strategy trials")
