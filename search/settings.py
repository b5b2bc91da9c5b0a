"""The settings of one search (what is searched, on what data, at what budget, stored where), each declared once.

A field's `Setting` (its metadata) says how it reaches the user: its help, its `indexnas search` option
(search/cli.py builds them), whether `indexnas.search()` takes it (indexnas/api.py builds its signature),
whether it is part of the study's identity (what a resumed study must agree on) and its checks
(search/setting_checks.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, Field, dataclass
from pathlib import Path
from typing import Any

from indexnas.search.samplers import REGISTRY as SAMPLER_REGISTRY
from indexnas.search.setting_checks import (
    NON_NEGATIVE_INT, POSITIVE_INT, Check, OneOf, heartbeat_within_grace, integer, json_values, known_objectives,
    lr_positive, optional, option, path_text, positive, rung_fractions, rungs_within_budget, seed_in_range,
    sigma_positive, study_name,
)

SAMPLERS = tuple(SAMPLER_REGISTRY)  # search/samplers.py: each one and why it is offered
PRUNERS = ("off", "halving")  # search.halving: "halving" is asynchronous successive halving at --rungs
DEFAULT_HEARTBEAT_S = 10.0  # a running trial's worker records a heartbeat this often
DEFAULT_GRACE_S = 60.0  # a trial without a heartbeat for this long is failed and queued again
MODES = ("pool", "stride", "decoder")
STRATEGIES = ("trials", "oneshot")  # trials: every trial fine-tunes one configuration; oneshot: search/oneshot.py
DEFAULT_RUNS = Path("runs")  # where the command line and indexnas.search() put studies and run folders
DEFAULT_STORAGE = str(DEFAULT_RUNS / "studies.log")
AS_FIELD = type("AsField", (), {"__repr__": lambda self: "AS_FIELD"})()  # a Setting's default: the field's own


@dataclass(frozen=True)
class Setting:
    """How one SearchSettings field reaches the user (the field itself holds its name, type and default)."""

    help: str  # the `indexnas search --help` line (for a bool: what its flag does)
    cli: bool = True  # an `indexnas search` option
    flag: str | None = None  # its spelling where not --FIELD-NAME (a bool's flag turns it off: --no-paper-grid)
    api: bool = True  # an `indexnas.search()` keyword
    identity: bool = False  # resuming the study with another value is refused (it would mix results)
    checks: tuple[Check, ...] = ()  # run in order on construction; the last one's result is stored
    cli_default: Any = AS_FIELD  # the option's default where not the field's (None: the command fills it in)
    api_default: Any = AS_FIELD  # the keyword's default where not the field's

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The values a `OneOf` check allows (the CLI option's choices), else None."""
        return next((check.values for check in self.checks if isinstance(check, OneOf)), None)


def setting(default: Any = MISSING, *, default_factory: Any = MISSING, **declared: Any) -> Any:
    """A SearchSettings field declared with its `Setting` (keywords: the Setting's fields)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"setting": Setting(**declared)})


@dataclass
class SearchSettings:
    """Everything `indexnas search` needs; stored in the study so a restart resumes the same search."""

    task: str = setting(help="denoise | segment | matting | depth", api=False, identity=True)
    model: str = setting(help="a zoo name, timm:NAME, smp:ARCH:ENCODER or file.py:factory", api=False, identity=True)
    study: str = setting(help="study name (default: TASK-MODEL-MODE, with -oneshot for that strategy)",
                         checks=(study_name,), cli_default=None, api_default=None)
    storage: str = setting(help="journal:///path/study.log, a .log path, or postgresql://... (default: "
                           "runs/studies.log)", checks=(path_text,), cli_default=DEFAULT_STORAGE,
                           api_default=DEFAULT_STORAGE)
    out: str = setting(help="run directory for host weights, Pareto checkpoints and the report (default: "
                       "runs/STUDY)", checks=(path_text,), cli_default=None, api_default=None)
    trials: int = setting(40, help="completed trials the study should hold (default 40)", checks=(POSITIVE_INT,))
    mode: str = setting("pool", help="surgery mode (default pool)", identity=True,
                        checks=(OneOf(MODES, "surgery mode"),))
    width: float | None = setting(None, help="zoo width multiplier (smaller is faster)", api=False, identity=True,
                                  checks=(optional(positive),))  # None: the model's default
    model_args: dict[str, Any] = setting(default_factory=dict, help="keywords for the model's builder, typed like "
                                         "Python literals", flag="--model-arg", api=False, identity=True,
                                         checks=(json_values,))
    host_fingerprint: str | None = setting(None, help="a user's model object (indexnas.search): its class and "
                                           "weight shapes", cli=False, api=False, identity=True)
    budget_steps: int = setting(500, help="training steps per trial (default 500)", identity=True,
                                checks=(POSITIVE_INT,))
    budget_seconds: float | None = setting(None, help="also stop each trial's training after this many seconds",
                                           identity=True, checks=(optional(positive),))
    data: str | None = setting(None, help="dataset folder in the task's standard layout (default: built-in "
                               "offline data)", api=False, identity=True)
    sigma: float = setting(25.0, help="denoising noise level, 0-255 scale (default 25)", api=False, identity=True,
                           checks=(sigma_positive,))
    patch: int = setting(40, help="training patch size (default 40, the paper's)", api=False, identity=True,
                         checks=(POSITIVE_INT,))
    batch_size: int = setting(16, help="training batch size (default 16)", api=False, identity=True,
                              checks=(POSITIVE_INT,))
    lr: float = setting(1e-3, help="learning rate of every trial's training (default 0.001)", api=False,
                        identity=True, checks=(lr_positive,))
    seed: int = setting(0, help="seed of the sampler and of the trials' training (default 0)", identity=True,
                        checks=(seed_in_range,))
    workers: int = setting(1, help="worker processes (one per GPU when there are GPUs)", checks=(POSITIVE_INT,))
    # the cost-aware sampler won the strategy benchmark (BENCHMARKS.md)
    sampler: str = setting("frontier", help="what proposes the trials after the grid (default frontier: exact "
                           "parameter costs, an additive model of the metric, the configuration of largest "
                           "optimistic hypervolume gain next); tpe, nsga2 and random are Optuna's",
                           checks=(OneOf(SAMPLERS, "sampler"),))
    # True: the host and the paper's 15 uniform configurations are the first trials (oneshot: scored first)
    paper_grid: bool = setting(True, help="do not enqueue the paper's 15 uniform configurations",
                               flag="--no-paper-grid")
    warm_start: bool = setting(True, help="train every trial from scratch", flag="--no-warm-start")
    max_params: float | None = setting(None, help="budget: parameters added; configurations over it are not "
                                       "trained", identity=True, checks=(optional(positive),))
    max_gflops: float | None = setting(None, help="budget: GFLOPs of the whole model at --flops-size",
                                       identity=True, checks=(optional(positive),))
    flops_size: int = setting(224, help="side of the input GFLOPs are measured at (the paper's 224)", cli=False,
                              api=False, identity=True, checks=(POSITIVE_INT,))
    eval_size: int | None = setting(None, help="side of the evaluation crops (None: the task's own)", cli=False,
                                    api=False)
    objectives: str = setting("metric,params", help="what the study optimises, comma-separated: metric, params "
                              "(added), gflops (default metric,params; bound GFLOPs with --max-gflops)",
                              identity=True, checks=(known_objectives,))
    progress: bool = setting(True, help="no progress bars", flag="--quiet", api_default=False)
    heartbeat_interval: float = setting(DEFAULT_HEARTBEAT_S, help="seconds between a running trial's heartbeats",
                                        cli=False, api=False)
    grace_period: float = setting(DEFAULT_GRACE_S, help="seconds without a heartbeat before a trial is failed "
                                  "and queued again", cli=False, api=False)
    prune: str = setting("off", help="halving: stop a trial at a rung unless it is in the best 1/eta of the trials "
                         "that reached it (metric and parameters added); never the host or the paper grid "
                         "(default off)", checks=(OneOf(PRUNERS, "pruning"),))
    rungs: tuple[float, ...] = setting((0.5,), help="with --prune halving: fractions of the budget where trials "
                                       "are scored, comma-separated (default 0.5; a quarter ranks configurations "
                                       "poorly)", checks=(rung_fractions,))
    reduction_factor: int = setting(2, help="with --prune halving: eta, the 1/eta kept at each rung (default 2)",
                                    checks=(integer(2, "an integer of at least 2", "e.g. --reduction-factor 2 "
                                                    "(keep the better half at each rung) or 3"),))
    retrain_seeds: int = setting(2, help="train each trial of the final Pareto front this many more times with "
                                 "other seeds and report mean +- sd (default 2; 0: off)",
                                 checks=(integer(0, "a non-negative integer", "e.g. --retrain-seeds 2, or 0 to "
                                                 "keep the front's single runs"),))
    strategy: str = setting("trials", help="trials: every trial fine-tunes one configuration (default); oneshot: "
                            "train one weight-sharing supernet, score configurations with it, train its Pareto "
                            "front as the trials", api=False, identity=True,
                            checks=(OneOf(STRATEGIES, "strategy"),))
    oneshot_steps: int | None = setting(None, help="oneshot: supernet training steps (default 4 x --budget-steps)",
                                        api=False, identity=True, checks=(optional(POSITIVE_INT),))
    oneshot_candidates: int = setting(100, help="oneshot: configurations the supernet scores beyond the host and "
                                      "the paper grid (default 100)", api=False, identity=True,
                                      checks=(NON_NEGATIVE_INT,))

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            for check in declaration(field).checks:
                setattr(self, field.name, check(field.name, getattr(self, field.name)))
        heartbeat_within_grace(self.heartbeat_interval, self.grace_period)
        rungs_within_budget(self.prune, self.rungs, self.budget_steps)

    @property
    def supernet_steps(self) -> int:
        """Training steps of the one-shot supernet (`--oneshot-steps`, default four trials' budget)."""
        return self.oneshot_steps or 4 * self.budget_steps

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields a resumed study must agree on."""
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}

    @staticmethod
    def stored_identity(stored: dict[str, Any]) -> dict[str, Any]:
        """The identity of stored settings; a field added since they were written reads as its default."""
        defaults = SearchSettings("", "", "-", "", "").to_dict()
        return {name: stored.get(name, defaults[name]) for name in IDENTITY_FIELDS}


def declaration(field: Field) -> Setting:
    """The `Setting` a SearchSettings field is declared with."""
    return field.metadata["setting"]


def flag(field: Field) -> str:
    """The field's `indexnas search` option: its declared spelling, else --FIELD-NAME."""
    return declaration(field).flag or option(field.name)


def field_default(field: Field) -> Any:
    """The dataclass default of a field (MISSING: a required field)."""
    return field.default_factory() if field.default_factory is not MISSING else field.default


def cli_default(field: Field) -> Any:
    """The default of the field's `indexnas search` option (MISSING: a required option)."""
    declared = declaration(field).cli_default
    return field_default(field) if declared is AS_FIELD else declared


def api_defaults() -> dict[str, Any]:
    """The settings `indexnas.search()` takes as keywords, with their defaults, in field order."""
    fields = (f for f in dataclasses.fields(SearchSettings) if declaration(f).api)
    return {f.name: field_default(f) if declaration(f).api_default is AS_FIELD else declaration(f).api_default
            for f in fields}


def default_out(study: str) -> str:
    """The run folder of a study when no --out / ``out`` is given: runs/STUDY."""
    return str(DEFAULT_RUNS / study)


IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(SearchSettings) if declaration(f).identity)
