"""Train a model on a task for a budget of steps and/or seconds, then score it on the validation set.

The model is trained in place, from the weights it has (to warm-start, load a state dict into
it before calling), and is left on the device it was trained on. Everything random is seeded
from `TrainConfig.seed`: Python, NumPy, torch (CPU and CUDA) and the DataLoader's shuffling and
workers; the model's own initialisation happens before the call, so seed that with
`seed_everything` too. When the training set has `recalibration` crops (larger than its patches), the
last `final_phase` of the budget trains on them, so that the weights and the BatchNorm statistics hold for
large inputs, and the statistics are then re-estimated on them (see `fit`, `recalibrate_batchnorm`). On CUDA, mixed precision (bf16 where supported, else fp16 with loss
scaling) is on by default; on CPU training runs in float32.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from indexnas.errors import UserError
from indexnas.search.problem import DivergedError
from indexnas.seeding import seed_everything
from indexnas.tasks.definitions import Task

AMP_MODES = ("auto", "off", "bf16", "fp16")
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": lambda params, lr, weight_decay: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay),
}
# Learning-rate factor as a function of the budget used (0 to 1). Cosine decay to 0 by the end of the
# budget: with a constant rate to the last step, a short fine-tune's score is mostly the noise of its
# last few updates (seed-to-seed sd of 0.7-2.4 dB PSNR at the demo's budget, 0.35-0.8 dB with cosine).
SCHEDULES: dict[str, Callable[[float], float]] = {
    "cosine": lambda used: 0.5 * (1.0 + math.cos(math.pi * min(used, 1.0))),
    "constant": lambda used: 1.0,
}


def _positive_int_or_none(value: object) -> bool:
    return value is None or (isinstance(value, int) and value >= 1)


def _non_negative_int(value: object) -> bool:
    return isinstance(value, int) and value >= 0


def _share(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < 1


def _step_numbers(value: tuple) -> bool:
    return all(isinstance(step, int) and step >= 1 for step in value)


@dataclass(frozen=True)
class ConfigRule:
    """One `TrainConfig` field's check: `valid(value)`, else a UserError from `problem` and `fix`
    (`problem` is formatted with the field's name and value)."""

    field: str
    valid: Callable[[Any], bool]
    problem: str
    fix: str

    def check(self, value: object) -> None:
        """Raise the rule's UserError when `value` breaks it."""
        if not self.valid(value):
            raise UserError(self.problem.format(name=self.field, value=value), self.fix)


def _one_of(field_name: str, what: str, options: Iterable[str]) -> ConfigRule:
    """A rule that the field names one of `options` (``unknown WHAT 'x'``, listing them)."""
    options = tuple(options)
    return ConfigRule(field_name, lambda value: value in options, f"unknown {what} {{value!r}}",
                      f"use one of: {', '.join(options)}")


# TrainConfig's per-field checks, in the order they run (the first broken one is reported).
CONFIG_RULES: tuple[ConfigRule, ...] = (
    ConfigRule("steps", _positive_int_or_none, "steps must be a positive integer or None, got {value!r}",
               "use e.g. steps=500"),
    ConfigRule("seconds", lambda value: value is None or value > 0, "seconds must be positive or None, got {value!r}",
               "use e.g. seconds=60"),
    *(ConfigRule(name, _positive_int_or_none, "{name} must be a positive integer, got {value!r}", f"use e.g. {name}=16")
      for name in ("batch_size", "eval_batch_size", "final_batch_size")),
    ConfigRule("lr", lambda value: value > 0, "lr must be positive, got {value!r}", "use e.g. lr=1e-3"),
    _one_of("optimizer", "optimizer", OPTIMIZERS),
    _one_of("schedule", "learning-rate schedule", SCHEDULES),
    _one_of("amp", "amp mode", AMP_MODES),
    ConfigRule("final_phase", _share, "final_phase must be a share of the budget in [0, 1), got {value!r}",
               "use e.g. final_phase=0.25, or 0 to train on the patches only"),
    ConfigRule("bn_recalibration", _non_negative_int, "bn_recalibration must be a non-negative integer, got {value!r}",
               "use e.g. bn_recalibration=256, or 0 to keep the running statistics as trained"),
    ConfigRule("eval_at", _step_numbers, "eval_at must be positive step numbers, got {value!r}",
               "use e.g. eval_at=(50, 100)"),
    ConfigRule("seed", _non_negative_int, "seed must be a non-negative integer, got {value!r}", "use e.g. seed=0"),
)


@dataclass
class TrainConfig:
    """Budget and settings of one training run; the budget is whichever of steps/seconds ends first."""

    steps: int | None = 500
    seconds: float | None = None
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # one of OPTIMIZERS
    schedule: str = "cosine"  # one of SCHEDULES: how the learning rate moves over the budget
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:N"
    amp: str = "auto"  # "auto" (bf16/fp16 on CUDA, off on CPU), "off", "bf16", "fp16"
    progress: bool = True  # tqdm bar on stderr
    label: str = "train"  # the progress bar's description, e.g. "trial 7"
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)
    eval_batch_size: int | None = None  # None: batch_size when validation items share one size, else 1
    # Share of the budget (its last steps, counted in it) trained on the training set's `recalibration` crops,
    # with `final_batch_size` of them per step (None: about the pixels of a patch batch, at least 2). See `fit`.
    final_phase: float = 0.25
    final_batch_size: int | None = None
    # Samples of the training set's `recalibration` crops over which BatchNorm statistics are re-estimated
    # after training (0: keep the running statistics as trained). See `recalibrate_batchnorm`.
    bn_recalibration: int = 256
    eval_at: tuple[int, ...] = ()  # also score the model after these steps (TrainResult.intermediate)
    # Called with (step, metrics) as each intermediate score is taken, before training goes on; an exception it
    # raises stops the run there (multi-fidelity pruning raises optuna.TrialPruned, search/halving.py).
    on_score: Callable[[int, dict[str, float]], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.steps is None and self.seconds is None:
            raise UserError("the training budget has neither steps nor seconds", "set steps=N, seconds=S, or both")
        for rule in CONFIG_RULES:
            rule.check(getattr(self, rule.field))


@dataclass
class TrainResult:
    """What a run measured: validation metrics, the budget actually used, and the loss curve."""

    metrics: dict[str, float]
    steps: int
    train_seconds: float
    eval_seconds: float
    final_loss: float
    losses: list[float] = field(repr=False)
    device: str
    amp: str  # precision actually used: "off", "bf16" or "fp16"
    batch_size: int
    # Per validation part (the first is the one `metrics` names plainly): each item's primary metric.
    item_scores: dict[str, list[float]] = field(default_factory=dict, repr=False)
    intermediate: dict[int, dict[str, float]] = field(default_factory=dict)  # step -> metrics (config.eval_at)
    final_steps: int = 0  # the last steps of `steps`, trained on the training set's `recalibration` crops

    @property
    def samples_per_second(self) -> float:
        """Training throughput (samples per second of training time)."""
        return self.steps * self.batch_size / self.train_seconds if self.train_seconds > 0 else float("nan")


def resolve_device(name: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; asking for CUDA without it raises UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}", "use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but CUDA is not available", "use device='auto' or 'cpu'")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device type {device.type!r} is not supported", "use auto, cpu, cuda or cuda:N")
    return device


def resolve_amp(mode: str, device: torch.device) -> str:
    """The precision to use: "auto" is bf16 (or fp16 without bf16 support) on CUDA, "off" on CPU."""
    if device.type != "cuda":
        if mode in ("bf16", "fp16"):
            raise UserError(f"mixed precision {mode!r} needs a CUDA device, got {device}", "use amp='auto' or 'off'")
        return "off"
    if mode == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return mode


def train_and_evaluate(
    model: nn.Module, task: Task, train_set: Dataset, val_set: Dataset, config: TrainConfig | None = None
) -> TrainResult:
    """Train `model` in place on `train_set` within the budget, then return its metrics on `val_set`."""
    config = config or TrainConfig()
    result = fit(model, task, train_set, config, val_set=val_set)
    start = time.perf_counter()
    result.metrics, result.item_scores = evaluate_items(model, task, val_set, config, device=torch.device(result.device),
                                                        precision=result.amp)
    result.eval_seconds = time.perf_counter() - start
    return result


def fit(model: nn.Module, task: Task, train_set: Dataset, config: TrainConfig | None = None, *,
        val_set: Dataset | None = None) -> TrainResult:
    """Train `model` in place on `train_set` within the budget, then recalibrate its BatchNorm statistics
    (`recalibrate_batchnorm`); the result's metrics are left empty, its `intermediate` scores (on `val_set`,
    needed when `config.eval_at` names steps) filled.

    The last `config.final_phase` of the budget (its steps count toward it) trains on `train_set.recalibration`
    when there is one: crops as large as the evaluation's (128x128 for 40x40 denoising patches), batches of
    `final_batch_size`. Why: statistics and weights adapted to small patches do not hold for whole images,
    where the deepest feature maps are no longer dominated by zero-padded borders; swapping in the large
    crops' statistics only after training rescued some models and cost others several dB, training the last
    phase on them held for every configuration measured (BENCHMARKS.md, "A score you can trust")."""
    config = config or TrainConfig()
    device = resolve_device(config.device)
    precision = resolve_amp(config.amp, device)
    seed_everything(config.seed)
    model.to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise UserError("the model has no trainable parameters", "unfreeze some parameters before training")
    optimizer = OPTIMIZERS[config.optimizer](parameters, lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    batches = _endless_batches(train_set, config, device)
    final_set = getattr(train_set, "recalibration", None) if config.final_phase else None
    final_steps = 0
    if config.eval_at and val_set is None:
        raise UserError("intermediate scores (eval_at) need a validation set", "pass val_set=... to fit")

    losses: list[float] = []
    intermediate: dict[int, dict[str, float]] = {}
    bar = _progress_bar(config)
    model.train()
    start = time.perf_counter()
    try:
        while not _budget_spent(len(losses), time.perf_counter() - start, config):
            used = _budget_fraction(len(losses), time.perf_counter() - start, config)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * SCHEDULES[config.schedule](used)
            in_final_phase = final_set is not None and used >= 1 - config.final_phase
            if in_final_phase and not final_steps:  # from here on: the larger crops
                final_config = dataclasses.replace(config, batch_size=final_batch_size(train_set, final_set, config))
                batches = _endless_batches(final_set, final_config, device)
            final_steps += in_final_phase
            batch = next(batches)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, precision):
                loss = task.loss(model(task.model_inputs(batch)), batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise DivergedError(len(losses) + 1, value)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(value)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4g}", refresh=False)
            if len(losses) in config.eval_at:  # scored as the final model is, on a copy: training goes on untouched
                with torch.random.fork_rng(devices=[]):  # loaders draw from torch's global generator
                    snapshot = copy.deepcopy(model)
                    recalibrate_batchnorm(snapshot, task, train_set, config, device, precision)
                    intermediate[len(losses)] = evaluate(snapshot, task, val_set, config, device=device,
                                                         precision=precision)
                if config.on_score is not None:
                    config.on_score(len(losses), intermediate[len(losses)])
    finally:
        bar.close()
    train_seconds = time.perf_counter() - start
    recalibrate_batchnorm(model, task, train_set, config, device, precision)
    return TrainResult(
        metrics={},
        steps=len(losses),
        train_seconds=train_seconds,
        eval_seconds=0.0,
        final_loss=losses[-1] if losses else float("nan"),
        losses=losses,
        device=str(device),
        amp=precision,
        batch_size=config.batch_size,
        intermediate=intermediate,
        final_steps=final_steps,
    )


def final_batch_size(train_set: Dataset, final_set: Dataset, config: TrainConfig) -> int:
    """Samples per step of the final phase: `config.final_batch_size`, else as many large crops as hold about
    the pixels of one batch of training patches, at least 2 (BatchNorm needs more than one sample)."""
    if config.final_batch_size is not None:
        return config.final_batch_size
    with torch.random.fork_rng(devices=[]):  # training samples draw from torch's generator: leave it as it was
        patch, crop = (math.prod(next(iter(dataset[0].values())).shape[-2:]) for dataset in (train_set, final_set))
    return max(2, round(config.batch_size * patch / crop))


def recalibrate_batchnorm(model: nn.Module, task: Task, train_set: Dataset, config: TrainConfig,
                          device: torch.device, precision: str) -> bool:
    """Re-estimate every BatchNorm's running statistics (an exact average, weights untouched) over
    `config.bn_recalibration` samples of `train_set.recalibration`; False when there is nothing to do.

    Why: statistics gathered on small training patches do not hold for whole images. On 40x40
    patches the deepest features of a 3-stage encoder-decoder are 5x5 maps dominated by zero-padded
    borders; evaluated on whole photographs with those statistics, dncnn_segnet + holistic fell to
    18.6-19.2 dB where the same weights reach 23.2-24.7 dB once the statistics come from 128x128
    crops of the same training images (BENCHMARKS.md, "A score you can trust"). Re-estimating on
    40x40 patches changes nothing (the running statistics did not lag the weights). Alone, after
    training on patches only, it cost one m2o run 3.4 dB; after `fit`'s final phase on the same crops
    it held for every configuration measured, and it is needed there: the running statistics of that
    phase's few two-crop batches are too noisy (keep: 18.0 dB on whole images, 23.0 re-estimated).
    Torch's global random state is kept, so a run with intermediate scores trains exactly like one without.
    """
    source = getattr(train_set, "recalibration", None)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not config.bn_recalibration or source is None or not norms:
        return False
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the recalibration batches
    batch_size = min(config.batch_size, config.bn_recalibration)
    was_training = model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(config.seed)
            loader = DataLoader(source, batch_size=batch_size, shuffle=True, num_workers=config.num_workers,
                                generator=torch.Generator().manual_seed(config.seed))
            seen = 0
            while seen < config.bn_recalibration:
                for batch in loader:
                    batch = _to_device(batch, device)
                    with _autocast(device, precision):
                        model(task.model_inputs(batch))
                    seen += len(next(iter(batch.values())))
                    if seen >= config.bn_recalibration:
                        break
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.train(was_training)
    return True


def evaluate(
    model: nn.Module,
    task: Task,
    val_set: Dataset,
    config: TrainConfig | None = None,
    *,
    device: torch.device | None = None,
    precision: str | None = None,
) -> dict[str, float]:
    """Metrics of `model` on `val_set`, in eval mode without gradients, aggregated exactly over all items.

    A validation set with `parts` (tasks.data.validation.ValidationSet) is scored part by part: the first
    part's metrics keep their names, the others' are prefixed with the part's name ("whole_psnr").
    """
    return evaluate_items(model, task, val_set, config, device=device, precision=precision)[0]


def evaluate_items(
    model: nn.Module,
    task: Task,
    val_set: Dataset,
    config: TrainConfig | None = None,
    *,
    device: torch.device | None = None,
    precision: str | None = None,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(metrics as `evaluate` gives them, each part's per-item primary metric): the per-item scores
    are what a paired standard error between two models is computed from (search.scoring)."""
    config = config or TrainConfig()
    device = device or resolve_device(config.device)
    precision = precision or resolve_amp(config.amp, device)
    if len(val_set) == 0:
        raise UserError("the validation set is empty", "give a validation set with at least one sample")
    parts = getattr(val_set, "parts", None) or {"items": val_set}
    metrics: dict[str, float] = {}
    items: dict[str, list[float]] = {}
    model.to(device)
    was_training = model.training
    model.eval()
    try:
        for index, (name, part) in enumerate(parts.items()):
            statistics = _item_statistics(model, task, part, config, device, precision)
            prefix = "" if index == 0 else f"{name}_"
            metrics.update({prefix + key: value for key, value in task.aggregate(statistics).items()})
            items[name] = [task.finish(s)[task.primary_metric] for s in statistics]
    finally:
        model.train(was_training)
    return metrics, items


def _item_statistics(model: nn.Module, task: Task, dataset: Dataset, config: TrainConfig, device: torch.device,
                     precision: str) -> list[dict]:
    """The task's statistics of every item of `dataset` (summed, they give the exact metrics)."""
    same_size = getattr(dataset, "same_size", False)
    batch_size = config.eval_batch_size or (config.batch_size if same_size else 1)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=config.num_workers)
    statistics = []
    with torch.no_grad():
        for batch in loader:
            batch = _to_device(batch, device)
            with _autocast(device, precision):
                output = model(task.model_inputs(batch)).float()
            statistics += task.item_statistics(output, batch)
    return statistics


def _endless_batches(dataset: Dataset, config: TrainConfig, device: torch.device) -> Iterator[dict]:
    """Shuffled batches forever (reshuffled every pass), moved to `device`; shuffling and workers are seeded."""
    if len(dataset) < config.batch_size:
        raise UserError(
            f"the training set has {len(dataset)} samples, fewer than one batch of {config.batch_size}",
            "lower batch_size or give more training samples",
        )
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=config.num_workers,
        generator=generator,
        worker_init_fn=_seed_worker,
        pin_memory=device.type == "cuda",
        persistent_workers=config.num_workers > 0,
    )
    while True:
        for batch in loader:
            yield _to_device(batch, device)


def _seed_worker(_worker_id: int) -> None:
    """DataLoader workers: derive Python and NumPy seeds from the worker's torch seed (set by the loader)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def _budget_fraction(steps: int, seconds: float, config: TrainConfig) -> float:
    """How much of the budget is used, 0 to 1: the larger of the steps and seconds fractions."""
    return max(steps / config.steps if config.steps else 0.0, seconds / config.seconds if config.seconds else 0.0)


def _budget_spent(steps: int, seconds: float, config: TrainConfig) -> bool:
    return (config.steps is not None and steps >= config.steps) or (
        config.seconds is not None and seconds >= config.seconds
    )


def _autocast(device: torch.device, precision: str) -> torch.autocast:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=precision != "off")


def _progress_bar(config: TrainConfig):
    from tqdm import tqdm

    return tqdm(total=config.steps, desc=config.label, unit="step", disable=not config.progress, leave=False)
