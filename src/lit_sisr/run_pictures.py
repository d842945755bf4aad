"""What a training run did, as two pictures next to its results: ``curves.png`` and ``samples.png``.

- ``curves.png``: the training loss (L1, every ``log_every_n_steps`` steps, the values the loggers
  get) and the validation PSNR over steps, with MATLAB bicubic's PSNR on the same validation
  images as a reference line. Written when fitting ends.
- ``samples.png``: bicubic | SR | HR centre crops of the first test images (of the first test set;
  the validation images when the run is not tested), each titled with the PSNR of the whole image
  under the run's protocol. Written when fitting ends (validation images) and again when testing
  ends (test images, the weights that were tested).

Both are drawn once, at the end (never per step): during training the callback only keeps the
loss tensors it is handed at logging steps (no host sync; they are read at the next validation,
which syncs anyway) and the validation PSNR Lightning already computed. Its record is part of the
checkpoint (``state_dict``), so a resumed run draws its whole history. Only global rank 0 draws;
under DDP the bicubic reference and the samples come from rank 0's share of the images. With a
``WandbLogger`` attached the same PNG files are logged as ``pictures/curves`` and
``pictures/samples``. The crops are those of the W&B validation samples
(:func:`lit_sisr.sample_images.sample_crops`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from lit_sisr.backbones.bicubic import Bicubic
from lit_sisr.sample_images import sample_crops

CURVES, SAMPLES = "curves.png", "samples.png"


class RunPictures(pl.Callback):
    """Writes ``<dirpath>/curves.png`` and ``<dirpath>/samples.png`` (module docstring)."""

    def __init__(self, dirpath: str, num_images: int = 3, crop: int = 160) -> None:
        self.dirpath, self.num_images, self.crop = Path(dirpath), num_images, crop
        self.losses: list[tuple[int, float]] = []
        self.val_psnr: list[tuple[int, float]] = []
        self.val_bicubic: float | None = None
        self.written: list[Path] = []
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._bicubic_sum: list[torch.Tensor] = []
        self._samples: list[dict[str, Any]] = []

    # -- record ---------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        # x axis: optimizer steps done (Lightning logs the same losses under step - 1)
        step = trainer.global_step
        if step % max(1, trainer.log_every_n_steps):
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if torch.is_tensor(loss):
            self._pending.append((step, loss.detach()))

    def _flush(self) -> None:
        if self._pending:
            values = torch.stack([v.float().cpu() for _, v in self._pending]).tolist()
            self.losses += [(s, v) for (s, _), v in zip(self._pending, values)]
            self._pending = []

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.val_bicubic is None and not trainer.sanity_checking:  # once: it does not change
            lr, hr, _ = batch
            self._bicubic_sum.append(
                pl_module.protocol.score(Bicubic(pl_module.scale)(lr), hr, pl_module.scale)[0].float().cpu()
            )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self.val_bicubic is None and self._bicubic_sum:
            self.val_bicubic = float(torch.cat(self._bicubic_sum).mean())
            self._bicubic_sum = []
        psnr = trainer.callback_metrics.get("val/psnr")
        if psnr is not None:
            self.val_psnr.append((trainer.global_step, float(psnr)))
        self._flush()

    def state_dict(self) -> dict[str, Any]:
        self._flush()
        return {"losses": self.losses, "val_psnr": self.val_psnr, "val_bicubic": self.val_bicubic}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.losses = [tuple(x) for x in state_dict.get("losses", [])]
        self.val_psnr = [tuple(x) for x in state_dict.get("val_psnr", [])]
        self.val_bicubic = state_dict.get("val_bicubic")

    # -- draw -----------------------------------------------------------------------------------
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush()
        if not trainer.is_global_zero:
            return
        self._save(trainer, CURVES, curves_figure(self.losses, self.val_psnr, self.val_bicubic, _label(pl_module)))
        data = getattr(trainer.datamodule, "val_data", None)
        if data is not None and len(data):
            samples = [
                self._sample(pl_module, *data[i][:2], data.names[i]) for i in range(min(self.num_images, len(data)))
            ]
            self._save(trainer, SAMPLES, samples_figure(samples, _label(pl_module), f"validation: {data.name}"))

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._samples = []

    @torch.no_grad()
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx == 0 and len(self._samples) < self.num_images and trainer.is_global_zero:
            lr, hr, index = batch
            data = trainer.datamodule.test_data[0] if trainer.datamodule is not None else None
            name = data.names[int(index[0])] if data is not None else str(int(index[0]))
            self._samples.append(self._sample(pl_module, lr[:1], hr[:1], name))

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._samples and trainer.is_global_zero:
            data = trainer.datamodule.test_data[0] if trainer.datamodule is not None else None
            title = f"test: {data.name}" if data is not None else "test"
            self._save(trainer, SAMPLES, samples_figure(self._samples, _label(pl_module), title))
        self._samples = []

    @torch.no_grad()
    def _sample(self, pl_module, lr: torch.Tensor, hr: torch.Tensor, name: str) -> dict[str, Any]:
        if lr.dim() == 3:  # an item of the dataset, not a batch
            lr, hr = lr[None], hr[None]
        # as the loops hand batches over: on the device, uint8 levels made floats (LitSR hook)
        lr, hr = pl_module.on_after_batch_transfer((lr.to(pl_module.device), hr.to(pl_module.device)), 0)
        crops, sr, bicubic = sample_crops(pl_module, lr, hr, self.crop)
        score = pl_module.protocol.score
        hr = hr[..., : sr.shape[-2], : sr.shape[-1]]
        return {
            "name": name,
            "crops": crops,
            "psnr": float(score(sr.float(), hr, pl_module.scale)[0][0]),
            "bicubic_psnr": float(score(bicubic, hr, pl_module.scale)[0][0]),
        }

    def _save(self, trainer: pl.Trainer, name: str, fig) -> None:
        from lit_sisr.report.figures import save_figure

        (path,) = save_figure(fig, self.dirpath / Path(name).stem, formats=("png",), dpi=110)
        if path not in self.written:
            self.written.append(path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=f"pictures/{path.stem}", images=[str(path)], step=trainer.global_step)


def _label(pl_module) -> str:
    config = (getattr(pl_module, "hparams", {}) or {}).get("config") or {}
    model, attention = config.get("model", {}).get("name"), config.get("attention", {}).get("name")
    return f"{model}-{attention} x{pl_module.scale}" if model else f"SR x{pl_module.scale}"


def picture_paths(trainer: pl.Trainer) -> list[Path]:
    """The pictures the run's :class:`RunPictures` callbacks wrote (for the end-of-run message)."""
    return [p for cb in trainer.callbacks if isinstance(cb, RunPictures) for p in cb.written]


def curves_figure(losses, val_psnr, val_bicubic: float | None, label: str):
    from lit_sisr.report.figures import _pyplot

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    if losses:
        steps, values = zip(*losses)
        left.plot(steps, values, color="#4C72B0", linewidth=1)
        if min(values) > 0:
            left.set_yscale("log")
    left.set(title="training loss (L1)", xlabel="step", ylabel="loss")
    if val_psnr:
        steps, values = zip(*val_psnr)
        right.plot(steps, values, marker="o", markersize=3, color="#DD8452", label=label)
        right.annotate(
            f"{values[-1]:.2f} dB",
            (steps[-1], values[-1]),
            textcoords="offset points",
            xytext=(-8, -12),
            ha="right",
            fontsize=8,
        )
    if val_bicubic is not None and math.isfinite(val_bicubic):
        right.axhline(val_bicubic, color="grey", linestyle="--", linewidth=1, label=f"bicubic {val_bicubic:.2f} dB")
    right.set(title="validation PSNR (Y)", xlabel="step", ylabel="PSNR (dB)")
    if val_psnr or val_bicubic is not None:
        right.legend(fontsize=8, loc="lower right")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def samples_figure(samples: list[dict[str, Any]], label: str, title: str):
    from lit_sisr.report.figures import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(len(samples), 3, figsize=(7.5, 2.6 * len(samples)), squeeze=False)
    for row, sample in zip(axes, samples):
        gain = sample["psnr"] - sample["bicubic_psnr"]
        titles = (
            f"{sample['name']}: bicubic {sample['bicubic_psnr']:.2f} dB",
            f"{label} {sample['psnr']:.2f} dB ({gain:+.2f})",
            "HR",
        )
        for ax, crop, text in zip(row, sample["crops"], titles):
            ax.imshow(_to_array(crop), interpolation="nearest", cmap="gray", vmin=0, vmax=255)
            ax.set_title(text, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{title} (centre crops; PSNR of the whole image)", fontsize=9)
    fig.tight_layout()
    return fig


def _to_array(crop: torch.Tensor) -> np.ndarray:
    from lit_sisr.metrics import quantize

    levels = (quantize(crop.float().cpu()) * 255).round().to(torch.uint8)
    return levels.permute(1, 2, 0).numpy() if levels.shape[0] == 3 else levels[0].numpy()
