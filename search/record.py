"""What a trial (and a study) records: every user attribute named once, with its type and meaning.

A trial's record is its Optuna user attributes; the search writes them as a trial runs and the summary,
the reports, the frontier sampler and the benchmarks read them back. Each is an `Attribute` here: the key it
is stored under, its value's type (the type parameter) and a line on what it means. Readers go through
`TrialRecord` (a trial's) or `StudyRecord` (a study's), typed by the attribute they ask for; writers go
through `write`, `write_study` and `enqueue`, which refuse an attribute this module does not name.
tests/search/test_record.py fails when code reads or writes a user attribute around them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar, overload

if TYPE_CHECKING:
    import optuna

T = TypeVar("T")
D = TypeVar("D")
TRIAL_SCOPE, STUDY_SCOPE = "trial", "study"


@dataclass(frozen=True)
class Attribute(Generic[T]):
    """One user attribute: the key it is stored under, what it means, and whose it is (a trial's or a study's)."""

    key: str
    meaning: str
    scope: str


TRIAL: dict[str, Attribute[Any]] = {}  # every trial attribute, by key
STUDY: dict[str, Attribute[Any]] = {}  # every study attribute, by key (retraining records: `retraining`)


def _trial(key: str, meaning: str) -> Attribute[Any]:
    TRIAL[key] = Attribute(key, meaning, TRIAL_SCOPE)
    return TRIAL[key]


def _study(key: str, meaning: str) -> Attribute[Any]:
    STUDY[key] = Attribute(key, meaning, STUDY_SCOPE)
    return STUDY[key]


# A trial's user attributes. What it is (search/space.py `SearchSpace.suggest`, before any training):
CHOICES: Attribute[dict[str, str]] = _trial("choices", "each pair's choice (pair name -> IndexSpec text)")
RECIPE: Attribute[dict[str, Any]] = _trial("recipe", "the rewrite as a recipe that replays it onto a fresh host")
PARAMS_ADDED: Attribute[int] = _trial("params_added", "parameters the rewrite adds to the host")
PARAMS_TOTAL: Attribute[int] = _trial("params_total", "parameters of the rewritten model")
GFLOPS: Attribute[float] = _trial("gflops", "GFLOPs of the rewritten model at the example input")
GFLOPS_ADDED: Attribute[float] = _trial("gflops_added", "GFLOPs the rewrite adds to the host's")
COSTS = (PARAMS_ADDED, PARAMS_TOTAL, GFLOPS, GFLOPS_ADDED)  # what a rewrite costs (`Suggestion.costs`)
UNIFORM: Attribute[str] = _trial("uniform", "the enqueued paper-grid label ('host' or an IndexSpec); absent: mixed")
ONESHOT_SCORE: Attribute[float] = _trial("oneshot_score", "the configuration's supernet score (search/oneshot.py)")
# The study cache and multi-fidelity pruning (search/cache.py, search/halving.py):
CANONICAL: Attribute[str] = _trial("canonical", "the configuration's canonical key (search.canonical)")
CANONICAL_CHOICES: Attribute[dict[str, str]] = _trial("canonical_choices", "the choices with aliases resolved")
DUPLICATE_OF: Attribute[int] = _trial("duplicate_of", "the number of the trial whose result answered this repeat")
RUNG_SCORES: Attribute[dict[str, dict[str, float]]] = _trial(
    "rung_scores", "the searched metrics at each rung reached: {str(step): {metric: value}}")
PRUNED_AT: Attribute[int] = _trial("pruned_at", "the rung step a trial pruned at a rung stopped at")
# Who ran it and how it went (search/study.py `Objective`, search/scoring.py):
WORKER: Attribute[str] = _trial("worker", "the process that ran it: '<host>-<pid>'")
SEED: Attribute[int] = _trial("seed", "its training seed (search.scoring.trial_seed)")
TRAIN_STEPS: Attribute[int | None] = _trial(
    "train_steps", "steps it trained itself: 0 for a repeat or over budget, the rung step when pruned there")
STEPS: Attribute[int | None] = _trial("steps", "the steps its training reported")
TRAIN_SECONDS: Attribute[float] = _trial("train_seconds", "seconds its fine-tuning took (0 for a repeat)")
DEVICE: Attribute[str] = _trial("device", "the device it trained on")
METRICS: Attribute[dict[str, float]] = _trial("metrics", "the task's metrics at the final evaluation")
ITEM_SCORES: Attribute[dict[str, list[float]]] = _trial("item_scores", "the primary metric per validation item")
SCORE_SE: Attribute[float] = _trial("score_se", "standard error of its score over the validation items")
SCORE_SE_VS_HOST: Attribute[float] = _trial(
    "score_se_vs_host", "standard error of its paired difference to the warm host over the items")
LATENCY_MS: Attribute[float] = _trial("latency_ms", "median batch-1 inference time in milliseconds")
CHECKPOINT: Attribute[str] = _trial("checkpoint", "path of its kept weights (Pareto-optimal trials keep theirs)")
FAILURE: Attribute[dict[str, str]] = _trial("failure", "why it failed or was pruned over budget: {kind, message}")
RETRAIN: Attribute[dict[str, Any]] = _trial(
    "retrain", "its retraining record, attached to plain trial records by search.retrain.attach (never stored)")

# A study's user attributes.
SETTINGS: Attribute[dict[str, Any]] = _study(
    "indexnas", "settings, objectives, pairs and host figures (search/study.py `study_attrs`)")
ONESHOT: Attribute[dict[str, Any]] = _study("indexnas:oneshot", "the supernet's cost and scores (search/oneshot.py)")
RETRAINING_PREFIX = "indexnas:retrain:"  # + a trial number: that trial's retraining record (search/retrain.py)
# A study's system attribute (search/study.py `_join`): how many processes have worked on it (sampler seeds).
JOINED = "indexnas:processes"


def retraining(number: int) -> Attribute[dict[str, Any]]:
    """The study attribute holding trial ``number``'s retraining record (seeds, metrics per seed, mean, sd, n)."""
    return Attribute(RETRAINING_PREFIX + str(number), f"trial {number}'s retraining record", STUDY_SCOPE)


def retrainings(study_attrs: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """Every retraining record among a study's user attributes, by trial number."""
    return {int(key.removeprefix(RETRAINING_PREFIX)): value for key, value in study_attrs.items()
            if key.startswith(RETRAINING_PREFIX)}


def _named(attribute: Attribute[Any], scope: str) -> Attribute[Any]:
    """``attribute`` when this module names it for ``scope``; otherwise a KeyError saying so."""
    registry = TRIAL if scope == TRIAL_SCOPE else STUDY
    suffix = attribute.key.removeprefix(RETRAINING_PREFIX)
    family = scope == STUDY_SCOPE and attribute.key != suffix and suffix.isdigit()
    if attribute.scope != scope or not (registry.get(attribute.key) == attribute or family):
        raise KeyError(f"{attribute.key!r} is not a {scope} attribute search/record.py names")
    return attribute


class HasUserAttrs(Protocol):
    """A trial (running or frozen) or a study: whatever carries user attributes."""

    @property
    def user_attrs(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Reader:
    """Typed reads of one owner's user attributes by their `Attribute` (a trial's or a study's)."""

    attrs: Mapping[str, Any]
    scope: ClassVar[str]

    @classmethod
    def of(cls, owner: HasUserAttrs) -> Self:
        """The reader of ``owner``'s user attributes as they are now."""
        return cls(owner.user_attrs)

    def __getitem__(self, attribute: Attribute[T]) -> T:
        return self.attrs[_named(attribute, self.scope).key]

    def __contains__(self, attribute: Attribute[Any]) -> bool:
        return _named(attribute, self.scope).key in self.attrs

    @overload
    def get(self, attribute: Attribute[T]) -> T | None: ...

    @overload
    def get(self, attribute: Attribute[T], default: D) -> T | D: ...

    def get(self, attribute: Attribute[Any], default: Any = None) -> Any:
        """The attribute's value, ``default`` when the owner has none."""
        return self.attrs.get(_named(attribute, self.scope).key, default)


class TrialRecord(_Reader):
    """A trial's record: ``TrialRecord.of(trial)`` (an Optuna trial) or ``TrialRecord(attrs)`` (the ``user_attrs``
    of a plain trial record, as the reports and the summary keep them)."""

    scope = TRIAL_SCOPE

    def with_value(self, attribute: Attribute[T], value: T) -> dict[str, Any]:
        """These attributes and ``attribute`` set to ``value``, as a new mapping (for a plain trial record)."""
        return {**self.attrs, _named(attribute, self.scope).key: value}


class StudyRecord(_Reader):
    """A study's user attributes: ``StudyRecord.of(study)``."""

    scope = STUDY_SCOPE


def write(trial: optuna.Trial, attribute: Attribute[T], value: T) -> None:
    """Store ``value`` as the trial's ``attribute`` (a KeyError for an attribute this module does not name)."""
    trial.set_user_attr(_named(attribute, TRIAL_SCOPE).key, value)


def write_study(study: optuna.Study, attribute: Attribute[T], value: T) -> None:
    """Store ``value`` as the study's ``attribute`` (a KeyError for an attribute this module does not name)."""
    study.set_user_attr(_named(attribute, STUDY_SCOPE).key, value)


def enqueue(study: optuna.Study, params: dict[str, Any], attributes: Mapping[Attribute[Any], Any]) -> None:
    """Queue a trial of ``params`` starting with ``attributes`` (once: a queued or run twin is not queued again)."""
    user_attrs = {_named(attribute, TRIAL_SCOPE).key: value for attribute, value in attributes.items()}
    study.enqueue_trial(params, user_attrs=user_attrs, skip_if_exists=True)


def write_stored(storage: Any, trial_id: int, attribute: Attribute[T], value: T) -> None:
    """Store ``value`` as ``attribute`` of the trial ``trial_id`` of ``storage``: for code that holds no trial
    object (a heartbeat storage failing a lost worker's trial)."""
    storage.set_trial_user_attr(trial_id, _named(attribute, TRIAL_SCOPE).key, value)


def drop(trial: Any, attribute: Attribute[Any]) -> None:
    """Remove ``attribute`` from a frozen trial's copy in place (a retried trial starts without its failure)."""
    trial.user_attrs.pop(_named(attribute, TRIAL_SCOPE).key, None)
