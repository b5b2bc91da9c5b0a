"""The settings of one search: what is searched, on what data, at what budget, stored where."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexnas.errors import UserError
from indexnas.search.samplers import REGISTRY as SAMPLER_REGISTRY

SAMPLERS = tuple(SAMPLER_REGISTRY)  # search/samplers.py: each one and why it is offered
PRUNERS = ("off", "halving")  # search.halving: "halving" is asynchronous successive halving at --rungs
DEFAULT_HEARTBEAT_S = 10.0  # a running trial's worker records a heartbeat this often
DEFAULT_GRACE_S = 60.0  # a trial without a heartbeat for this long is failed and queued again
MODES = ("pool", "stride", "decoder")
STRATEGIES = ("trials", "oneshot")  # trials: every trial fine-tunes one configuration; oneshot: search/oneshot.py
# Settings that define what a study's trials mean: resuming with other values would mix results.
IDENTITY_FIELDS = ("task", "model", "model_args", "host_fingerprint", "mode", "width", "budget_steps", "budget_seconds", "data", "sigma", "patch",
                   "batch_size", "lr", "seed", "max_params", "max_gflops", "flops_size", "objectives",
                   "strategy", "oneshot_steps", "oneshot_candidates")


@dataclass
class SearchSettings:
    """Everything `indexnas search` needs; stored in the study so a restart resumes the same search."""

    task: str
    model: str
    study: str
    storage: str
    out: str  # run directory: host weights, Pareto checkpoints, report
    trials: int = 40
    mode: str = "pool"
    width: float | None = None  # zoo width multiplier (None: the model's default)
    model_args: dict[str, Any] = field(default_factory=dict)  # keywords for the model's builder (--model-arg)
    host_fingerprint: str | None = None  # a user's model object (indexnas.search): its class and weight shapes
    budget_steps: int = 500
    budget_seconds: float | None = None
    data: str | None = None  # a dataset folder; None: the built-in offline data
    sigma: float = 25.0  # denoising noise level on the 0-255 scale
    patch: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    workers: int = 1
    sampler: str = "frontier"  # SAMPLERS; the cost-aware sampler won the strategy benchmark (BENCHMARKS.md)
    paper_grid: bool = True  # enqueue the host and the paper's 15 uniform configurations first (oneshot: score them)
    warm_start: bool = True  # train the host once; every trial fine-tunes from its weights
    max_params: float | None = None  # parameters added; over budget -> pruned before training
    max_gflops: float | None = None  # GFLOPs of the whole model at flops_size
    flops_size: int = 224  # the paper measures GFLOPs at 224 x 224
    eval_size: int | None = None
    objectives: str = "metric,params"  # search.objectives: any of metric, params, gflops, the metric first
    progress: bool = True
    heartbeat_interval: float = DEFAULT_HEARTBEAT_S
    grace_period: float = DEFAULT_GRACE_S
    prune: str = "off"  # PRUNERS: "halving" stops trials at rungs (search.halving, asynchronous successive halving)
    rungs: tuple[float, ...] = (0.5,)  # fractions of the budget where trials report (only 1/2 ranks reliably)
    reduction_factor: int = 2  # eta: a trial trains on at a rung only in the best 1/eta of the rung's records
    retrain_seeds: int = 2  # the final front's trials are trained this many more times with other seeds (0: off)
    strategy: str = "trials"  # one of STRATEGIES
    oneshot_steps: int | None = None  # supernet training steps (None: 4 x budget_steps)
    oneshot_candidates: int = 100  # configurations the supernet scores beyond the host and the paper's grid

    def __post_init__(self) -> None:
        positive = {"trials": self.trials, "budget_steps": self.budget_steps, "batch_size": self.batch_size,
                    "workers": self.workers, "patch": self.patch, "flops_size": self.flops_size}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.mode not in MODES:
            raise UserError(f"unknown surgery mode {self.mode!r}", f"use one of: {', '.join(MODES)}")
        if self.strategy not in STRATEGIES:
            raise UserError(f"unknown strategy {self.strategy!r}", f"use one of: {', '.join(STRATEGIES)}")
        if self.oneshot_steps is not None and (not isinstance(self.oneshot_steps, int) or self.oneshot_steps < 1):
            raise UserError(f"--oneshot-steps must be a positive integer, got {self.oneshot_steps!r}")
        if not isinstance(self.oneshot_candidates, int) or self.oneshot_candidates < 0:
            raise UserError(f"--oneshot-candidates must be a non-negative integer, got {self.oneshot_candidates!r}")
        if self.sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {self.sampler!r}", f"use one of: {', '.join(SAMPLERS)}")
        for name in ("max_params", "max_gflops", "budget_seconds", "width"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {value!r}")
        if not 0 < self.heartbeat_interval < self.grace_period:
            raise UserError(f"the heartbeat interval ({self.heartbeat_interval} s) must be positive and shorter than "
                            f"the grace period ({self.grace_period} s)", "e.g. heartbeat_interval=10, grace_period=60")
        if self.lr <= 0 or not self.sigma > 0:
            raise UserError("--lr and --sigma must be positive")
        try:  # stored in the study as JSON: tuples read back as lists, so compare them as JSON from the start
            self.model_args = json.loads(json.dumps(dict(self.model_args)))
        except (TypeError, ValueError) as error:
            raise UserError(f"model arguments must be numbers, strings, lists or dicts: {error}",
                            "pass Python literals, e.g. --model-arg classes=6") from None
        from indexnas.search.halving import parse_rungs, rung_steps
        from indexnas.search.objectives import parse

        parse(self.objectives)
        if self.prune not in PRUNERS:
            raise UserError(f"unknown pruning {self.prune!r}", f"use one of: {', '.join(PRUNERS)}")
        self.rungs = parse_rungs(self.rungs)
        if self.prune != "off" and not rung_steps(self.budget_steps, self.rungs):
            raise UserError(f"--rungs {','.join(map(str, self.rungs))} of --budget-steps {self.budget_steps} leave no "
                            "step before the end to prune at", "raise --budget-steps, or search with --prune off")
        if not isinstance(self.reduction_factor, int) or self.reduction_factor < 2:
            raise UserError(f"--reduction-factor must be an integer of at least 2, got {self.reduction_factor!r}",
                            "e.g. --reduction-factor 2 (keep the better half at each rung) or 3")
        if not isinstance(self.retrain_seeds, int) or self.retrain_seeds < 0:
            raise UserError(f"--retrain-seeds must be a non-negative integer, got {self.retrain_seeds!r}",
                            "e.g. --retrain-seeds 2, or 0 to keep the front's single runs")
        if not self.study or any(c in self.study for c in "/\\\n"):
            raise UserError(f"invalid study name {self.study!r}", "use letters, digits, '-', '_' and '.'")

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
