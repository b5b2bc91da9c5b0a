"""The four tasks of the paper: what a model is fed, its training loss, and exact validation metrics.

A batch is the dict a `tasks.data` dataset yields (collated). Metrics are computed in two steps
so that a validation set is scored exactly, not as a mean of batch means: `statistics` returns
summable quantities for one batch (per-image sums, a confusion matrix), `aggregate` turns their
sum into the metrics. `metrics(output, batch)` does both for a single batch.

Conventions:
- denoise: residual learning as in DnCNN: the model outputs the noise estimate, the restored
  image is noisy - output (clamped to [0, 1] for PSNR/SSIM); loss = mean squared error between
  output and the true noise. PSNR/SSIM are averaged per image.
- segment: the model outputs one logit map per class; loss = cross-entropy (255 ignored);
  mIoU from the confusion matrix accumulated over the whole validation set.
- matting: the input is RGB + trimap (4 channels, trimap 0/0.5/1); the model's 1-channel output
  is a logit and alpha = sigmoid(output) (or clamp(output, 0, 1) with alpha_from="clamp"). Loss =
  0.5 alpha-prediction + 0.5 composition loss, sqrt(diff^2 + 1e-6^2), over the unknown region
  only (Deep Image Matting). For metrics the known trimap regions are set to 0/1 first; SAD,
  MSE, Gradient and Connectivity are over the unknown region, averaged per image (SAD, Grad
  and Conn divided by 1000 as in Composition-1k).
- depth: the model outputs depth in metres; loss = L1 over valid pixels (depth > 0); RMSE,
  MAE and delta1 over valid pixels, averaged per image (as FastDepth evaluates, one image at a time).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from indexnas.errors import UserError
from indexnas.tasks import metrics

Batch = Mapping[str, torch.Tensor]
Statistics = dict[str, float | np.ndarray]

MATTING_EPSILON = 1e-6
ALPHA_FROM = ("sigmoid", "clamp")


@dataclass(frozen=True)
class Task(ABC):
    """One task: inputs, loss, prediction and metrics. Subclasses set the class-level facts below."""

    name = ""
    # The metrics `finish` returns, each with its direction ("maximize" or "minimize"), the primary one first.
    metric_directions: ClassVar[dict[str, str]] = {}
    in_channels = 0  # channels of model_inputs(batch)

    @property
    def primary_metric(self) -> str:
        """The metric a search optimises: the first of `metric_directions`."""
        return next(iter(self.metric_directions))

    @property
    def direction(self) -> str:
        """Whether to "maximize" or "minimize" the primary metric."""
        return self.metric_directions[self.primary_metric]

    @abstractmethod
    def model_inputs(self, batch: Batch) -> torch.Tensor:
        """The tensor to feed the model."""

    @abstractmethod
    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The paper's training loss for the model's raw output (a scalar, float32)."""

    @abstractmethod
    def prediction(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The task's answer from the raw output: restored image, class map, alpha or depth."""

    @abstractmethod
    def statistics(self, output: torch.Tensor, batch: Batch) -> Statistics:
        """Summable evaluation quantities of one batch (add them up over a validation set)."""

    @abstractmethod
    def finish(self, totals: Statistics) -> dict[str, float]:
        """Metrics from statistics summed over a whole validation set."""

    def out_channels(self, dataset: object) -> int:
        """Channels the model must output for this task on `dataset`."""
        return 1

    def item_statistics(self, output: torch.Tensor, batch: Batch) -> list[Statistics]:
        """`statistics` of each item of the batch on its own (summed, they are the batch's statistics)."""
        return [self.statistics(output[i : i + 1], {k: v[i : i + 1] for k, v in batch.items()})
                for i in range(output.shape[0])]

    def aggregate(self, statistics: Iterable[Statistics]) -> dict[str, float]:
        """Exact metrics over many batches: sum their statistics, then finish."""
        totals: Statistics = {}
        for part in statistics:
            for key, value in part.items():
                totals[key] = totals[key] + value if key in totals else value
        if not totals:
            raise UserError(f"no batches to evaluate for task {self.name!r}", "give a validation set with samples")
        return self.finish(totals)

    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Metrics of a single batch."""
        return self.aggregate([self.statistics(output, batch)])


@dataclass(frozen=True)
class DenoiseTask(Task):
    name = "denoise"
    metric_directions: ClassVar[dict[str, str]] = {"psnr": "maximize", "ssim": "maximize"}
    in_channels = 1

    def model_inputs(self, batch: Batch) -> torch.Tensor:
        return batch["noisy"]

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        noisy = batch["noisy"]
        _check_output(output, noisy, 1, self.name)
        return F.mse_loss(output.float(), noisy - batch["clean"])

    def prediction(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        _check_output(output, batch["noisy"], 1, self.name)
        return (batch["noisy"] - output.float()).clamp(0.0, 1.0)

    def statistics(self, output: torch.Tensor, batch: Batch) -> Statistics:
        restored, clean = self.prediction(output, batch), batch["clean"]
        return {
            "psnr": float(metrics.psnr(restored, clean).sum()),
            "ssim": float(metrics.ssim(restored, clean).sum()),
            "images": float(clean.shape[0]),
        }

    def item_statistics(self, output: torch.Tensor, batch: Batch) -> list[Statistics]:
        restored, clean = self.prediction(output, batch), batch["clean"]  # per-image metrics in one batched call
        psnr, ssim = metrics.psnr(restored, clean).tolist(), metrics.ssim(restored, clean).tolist()
        return [{"psnr": p, "ssim": s, "images": 1.0} for p, s in zip(psnr, ssim, strict=True)]

    def finish(self, totals: Statistics) -> dict[str, float]:
        return {"psnr": totals["psnr"] / totals["images"], "ssim": totals["ssim"] / totals["images"]}


@dataclass(frozen=True)
class SegmentTask(Task):
    name = "segment"
    metric_directions: ClassVar[dict[str, str]] = {"miou": "maximize", "pixel_accuracy": "maximize"}
    in_channels = 3

    def model_inputs(self, batch: Batch) -> torch.Tensor:
        return batch["image"]

    def out_channels(self, dataset: object) -> int:
        classes = getattr(dataset, "num_classes", None)
        if not classes:
            raise UserError(
                "the segmentation dataset does not say how many classes it has", "build it with tasks.data"
            )
        return int(classes)

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        label = batch["label"]
        self._check(output, label)
        return F.cross_entropy(output.float(), label, ignore_index=metrics.IGNORE_INDEX)

    def prediction(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        self._check(output, batch["label"])
        return output.argmax(dim=1)

    def statistics(self, output: torch.Tensor, batch: Batch) -> Statistics:
        return {"confusion": metrics.confusion_matrix(self.prediction(output, batch), batch["label"], output.shape[1])}

    def finish(self, totals: Statistics) -> dict[str, float]:
        confusion = totals["confusion"]
        return {
            "miou": metrics.mean_iou(confusion),
            "pixel_accuracy": float(np.trace(confusion) / max(confusion.sum(), 1)),
        }

    def _check(self, output: torch.Tensor, label: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() != 4 or output.shape[1] < 2:
            raise UserError(
                f"a segmentation model must return (batch, classes, H, W) logits, got {_describe(output)}",
                "give the model one output channel per class",
            )
        _check_output(output, label.unsqueeze(1), output.shape[1], self.name)
        known = label[label != metrics.IGNORE_INDEX]
        if known.numel() and int(known.max()) >= output.shape[1]:
            raise UserError(
                f"labels go up to class {int(known.max())} but the model outputs {output.shape[1]} classes",
                f"give the model {int(known.max()) + 1} output channels (task.out_channels(dataset))",
            )


@dataclass(frozen=True)
class MattingTask(Task):
    name = "matting"
    metric_directions: ClassVar[dict[str, str]] = {"sad": "minimize", "mse": "minimize", "grad": "minimize",
                                                   "conn": "minimize"}
    in_channels = 4
    alpha_from: str = "sigmoid"  # how the raw output becomes alpha: "sigmoid" (a logit) or "clamp"

    def __post_init__(self) -> None:
        if self.alpha_from not in ALPHA_FROM:
            raise UserError(f"unknown alpha_from {self.alpha_from!r}", f"use one of: {', '.join(ALPHA_FROM)}")

    def model_inputs(self, batch: Batch) -> torch.Tensor:
        return torch.cat([batch["image"], batch["trimap"]], dim=1)

    def alpha(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Alpha in [0, 1] from the raw output (no trimap applied)."""
        _check_output(output, batch["alpha"], 1, self.name)
        output = output.float()
        return torch.sigmoid(output) if self.alpha_from == "sigmoid" else output.clamp(0.0, 1.0)

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        alpha = self.alpha(output, batch)
        unknown = (batch["trimap"] == 0.5).float()
        count = unknown.sum().clamp_min(1.0)
        eps2 = MATTING_EPSILON**2
        alpha_loss = (torch.sqrt((alpha - batch["alpha"]) ** 2 + eps2) * unknown).sum() / count
        composite = alpha * batch["fg"] + (1.0 - alpha) * batch["bg"]
        composition_loss = (torch.sqrt((composite - batch["image"]) ** 2 + eps2) * unknown).sum() / (3 * count)
        return 0.5 * alpha_loss + 0.5 * composition_loss

    def prediction(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        alpha = self.alpha(output, batch)
        trimap = batch["trimap"]
        return torch.where(trimap == 1.0, 1.0, torch.where(trimap == 0.0, 0.0, alpha))

    def statistics(self, output: torch.Tensor, batch: Batch) -> Statistics:
        predicted = self.prediction(output, batch)[:, 0].double().cpu().numpy()
        truth = batch["alpha"][:, 0].double().cpu().numpy()
        unknown = (batch["trimap"][:, 0] == 0.5).cpu().numpy()
        totals = {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0, "images": float(len(truth))}
        for p, t, u in zip(predicted, truth, unknown, strict=True):
            totals["sad"] += metrics.sad(p, t, u)
            totals["mse"] += metrics.mse(p, t, u)
            totals["grad"] += metrics.gradient_error(p, t, u)
            totals["conn"] += metrics.connectivity_error(p, t, u)
        return totals

    def finish(self, totals: Statistics) -> dict[str, float]:
        return {key: totals[key] / totals["images"] for key in self.metric_directions}


@dataclass(frozen=True)
class DepthTask(Task):
    name = "depth"
    metric_directions: ClassVar[dict[str, str]] = {"rmse": "minimize", "mae": "minimize", "delta1": "maximize"}
    in_channels = 3

    def model_inputs(self, batch: Batch) -> torch.Tensor:
        return batch["image"]

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        truth = batch["depth"]
        _check_output(output, truth, 1, self.name)
        valid = (truth > 0).float()
        return ((output.float() - truth).abs() * valid).sum() / valid.sum().clamp_min(1.0)

    def prediction(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        _check_output(output, batch["depth"], 1, self.name)
        return output.float()

    def statistics(self, output: torch.Tensor, batch: Batch) -> Statistics:
        errors = metrics.depth_errors(self.prediction(output, batch), batch["depth"])
        valid = errors["valid"]
        totals = {key: float(errors[key][valid].sum()) for key in ("rmse", "mae", "delta1")}
        totals["images"] = float(valid.sum())
        return totals

    def finish(self, totals: Statistics) -> dict[str, float]:
        images = totals["images"]
        if images == 0:
            return dict.fromkeys(self.metric_directions, float("nan"))
        return {key: totals[key] / images for key in self.metric_directions}


def _check_output(output: object, reference: torch.Tensor, channels: int, task: str) -> None:
    """The model must return one (B, channels, H, W) tensor matching the target's batch and size."""
    expected = (reference.shape[0], channels, *reference.shape[-2:])
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != expected:
        raise UserError(
            f"the {task} model returned {_describe(output)}, expected a tensor of shape {expected}",
            "the model must return one tensor with the input's height and width "
            f"and {channels} channel(s) (inputs sized to a multiple of its total stride)",
        )


def _describe(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
