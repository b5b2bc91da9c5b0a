"""The CLI's search problem: a built-in task's data and a host built to fit it (`TaskProblem`)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from indexnas.errors import UserError
from indexnas.search.problem import Budget, Problem, check_metrics
from indexnas.search.settings import SearchSettings


def build_datasets(settings: SearchSettings) -> tuple[Any, Any]:
    """(train, val): the task's built-in offline data, or the user's folder in the standard layout."""
    from indexnas.tasks.registry import builtin_dataset, folder_dataset, task_entry

    options: dict[str, Any] = {"patch": settings.patch, "seed": settings.seed}
    options.update({name: getattr(settings, name) for name in task_entry(settings.task).data_settings})
    if settings.eval_size is not None:
        options["eval_size"] = settings.eval_size
    if settings.data:
        return folder_dataset(settings.task, settings.data, **options)
    return builtin_dataset(settings.task, **options)


def load_host(settings: SearchSettings, train_set: Any) -> tuple[nn.Module, torch.Tensor, dict[str, Any]]:
    """The host with the task's input/output channels where the model takes them, its example input, and
    its source (descriptor, arguments and example side: what `indexnas.load` rebuilds it from).

    Zoo and timm hosts get an example input at ``flops_size`` (the paper counts GFLOPs at
    224 x 224); smp models and model files use their loader's (a factory may return its own).
    """
    from indexnas.surgery.loading import SMP_PREFIX, is_model_file, load_model
    from indexnas.tasks.registry import get_task

    task = get_task(settings.task)
    torch.manual_seed(settings.seed)
    args = dict(settings.model_args)
    size = None
    if not (settings.model.startswith(SMP_PREFIX) or is_model_file(settings.model)):  # a zoo name or timm:NAME
        width = {} if settings.width is None else {"width": settings.width}
        args, size = {**_task_kwargs(settings.model, task, train_set), **width, **args}, settings.flops_size
    model, example = load_model(settings.model, size, args)
    if not isinstance(example, torch.Tensor) or example.dim() != 4 or example.shape[1] != task.in_channels:
        shape = tuple(example.shape) if isinstance(example, torch.Tensor) else type(example).__name__
        raise UserError(f"{settings.model} takes input {shape} but the {settings.task} task feeds "
                        f"(batch, {task.in_channels}, height, width) images",
                        f"pick a model for {settings.task} (e.g. {_suggest(settings.task)}), pass "
                        f"--model-arg {_argument(settings.model, 'in')}={task.in_channels}, or make a model file's "
                        "factory return (model, example_input) to say what it takes")
    return model, example, {"model": settings.model, "model_args": args, "size": size}


def _argument(descriptor: str, side: str) -> str:
    """The builder keyword for input channels (``side="in"``) or output classes (``"out"``) of a descriptor."""
    from indexnas.surgery.loading import SMP_PREFIX, is_model_file

    if descriptor.startswith(SMP_PREFIX):
        return "in_channels" if side == "in" else "classes"
    if is_model_file(descriptor):
        return "<your factory's argument>"
    return "in_chans" if side == "in" else "num_classes"


class TaskProblem(Problem):
    """A built-in task (denoise, segment, matting, depth) on its data: the CLI's search problem."""

    def __init__(self, settings: SearchSettings) -> None:
        from indexnas.tasks.registry import get_task

        self.settings = settings
        self.task_spec = get_task(settings.task)
        self.task, self.label = settings.task, settings.model
        self.train_set, self.val_set = build_datasets(settings)
        self.host, self.example, self.source = load_host(settings, self.train_set)
        self.directions = {self.task_spec.primary_metric: self.task_spec.direction}

    def config(self, budget: Budget) -> Any:
        from indexnas.tasks.train import TrainConfig

        s = self.settings
        return TrainConfig(steps=budget.steps, seconds=budget.seconds, batch_size=s.batch_size, lr=s.lr,
                           seed=s.seed if budget.seed is None else budget.seed,
                           progress=budget.progress, label=budget.label)

    def train(self, model: nn.Module, budget: Budget) -> dict[str, Any]:
        """Fine-tune in place; with rungs, fit scores a copy at each rung step and `budget.report` hears it."""
        from indexnas.tasks.train import fit

        if not budget.rungs or budget.report is None:
            result = fit(model, self.task_spec, self.train_set, self.config(budget))
        else:
            config = dataclasses.replace(self.config(budget), eval_at=budget.rungs, on_score=budget.report)
            result = fit(model, self.task_spec, self.train_set, config, val_set=self.val_set)
        return {"steps": result.steps, "device": result.device}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """The task's metrics; the primary metric per validation item stays in `item_scores` (search.scoring)."""
        from indexnas.tasks.train import evaluate_items

        device = next(model.parameters()).device
        metrics, self.item_scores = evaluate_items(model, self.task_spec, self.val_set, self.config(Budget(1)),
                                                   device=device)
        return metrics

    def check(self) -> None:
        """Two training samples through the host: wrong input or output channels fail here, before any training;
        then a training step too large for memory and data the metrics cannot use (search/preflight.py)."""
        from torch.utils.data import default_collate

        from indexnas.tasks.preflight import check_training
        from indexnas.tasks.registry import task_entry

        s, task = self.settings, self.task_spec
        batch = default_collate([self.train_set[i] for i in range(min(2, len(self.train_set)))])
        inputs = task.model_inputs(batch)
        was_training = self.host.training
        try:
            with torch.no_grad():
                output = self.host.eval()(inputs)
        except Exception as error:  # the user's model on the task's batches
            raise UserError(f"{s.model} fails on {s.task} batches {tuple(inputs.shape)}: {type(error).__name__}: "
                            f"{str(error).splitlines()[0] if str(error) else ''}",
                            f"if the channels differ, pass --model-arg {_argument(s.model, 'in')}={task.in_channels}; "
                            "if the size does not fit the model's stride, pass a --patch that is a multiple of it "
                            "(e.g. 64)") from None
        finally:
            self.host.train(was_training)
        expected = task.out_channels(self.train_set)
        channels = output.shape[1] if isinstance(output, torch.Tensor) and output.dim() == 4 else None
        if channels != expected:
            what = f"{channels} channels" if channels is not None else f"a {type(output).__name__}"
            raise UserError(f"{s.model} outputs {what} but the {s.task} data needs {expected} "
                            f"({task_entry(s.task).outputs})",
                            f"pass --model-arg {_argument(s.model, 'out')}={expected}")
        check_training(s, task, self.host, self.example, self.train_set, self.val_set)

    def path_scorer(self, recalibration: int) -> Callable[[nn.Module], float]:
        """A supernet path's score (search/oneshot.py): its BatchNorm statistics re-estimated on
        ``recalibration`` of the task's recalibration crops (the paths share the host's BatchNorms, trained on a
        mixture of paths), then the primary metric on the first validation part (the crops the study's objective
        is; whole images are left to the stand-alone trials: a score costs seconds)."""
        from indexnas.tasks.train import evaluate_items, recalibrate_batchnorm, resolve_amp

        parts = getattr(self.val_set, "parts", None)
        validation = next(iter(parts.values())) if parts else self.val_set
        metric, task = self.task_spec.primary_metric, self.task_spec
        config = dataclasses.replace(self.config(Budget(1)), bn_recalibration=recalibration)

        def score(model: nn.Module) -> float:
            device = next(model.parameters()).device
            precision = resolve_amp(config.amp, device)
            recalibrate_batchnorm(model, task, self.train_set, config, device, precision)
            metrics = evaluate_items(model, task, validation, config, device=device, precision=precision)[0]
            return check_metrics(metrics, {metric: task.direction})[metric]

        return score

    def host_failure_fix(self) -> str:
        s = self.settings
        return (f"lower --lr (now {s.lr:g}) if it diverged; lower --batch-size or --patch if out of memory; otherwise "
                f"check that the model trains on {s.task} batches (input {self.task_spec.in_channels} channels), "
                "or pass --no-warm-start")


def _task_kwargs(name: str, task: Any, train_set: Any) -> dict[str, Any]:
    """Output classes for segmentation, where the zoo model takes them."""
    from indexnas import zoo
    from indexnas.zoo.registry import REGISTRY, _resolve

    accepted = inspect.signature(REGISTRY[_resolve(name)[0]].builder).parameters
    if name not in zoo.list_models() and not name.startswith("timm:"):
        return {}
    kwargs: dict[str, Any] = {}
    if "num_classes" in accepted:
        kwargs["num_classes"] = task.out_channels(train_set)
    if "in_chans" in accepted:
        kwargs["in_chans"] = task.in_channels
    return kwargs


def _suggest(task: str) -> str:
    from indexnas.tasks.registry import task_entry

    return ", ".join(task_entry(task).zoo_models()) or "a zoo model"
