"""``LitSR``: the LightningModule that trains and evaluates any registered backbone.

Training: L1 loss on RGB in [0, 1], Adam (lr 1e-4) and a step schedule halving the learning rate
every 200 epochs (BAM paper Sec. 4.1; bam_reference.md section 5), all from config.
Evaluation: the standard protocol of :mod:`lit_sisr.metrics` per image; dataset figures are
torchmetrics ``MeanMetric``s of per-image values, so they are exact means under DDP as long as
each image is seen once (the DataModule's samplers guarantee that). Every test step also scores
MATLAB bicubic upscaling of the same LR image, so each test table carries its baseline row.
"""
from __future__ import annotations

from typing import Any, Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from lit_sisr.metrics import psnr_ssim_y
from lit_sisr.backbones.bicubic import Bicubic


class LitSR(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        scale: int,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        test_set_names: list[str] | None = None,
        config: dict | None = None,
    ) -> None:
        super().__init__()
        # The network is rebuilt from ``config`` (the resolved run config, plain data) when a
        # checkpoint is loaded; callables and modules stay out of the checkpoint.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.scale = scale
        self.bicubic = Bicubic(scale)
        self.optimizer_factory = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-4))
        self.scheduler_factory = scheduler
        self.val_psnr, self.val_ssim = MeanMetric(), MeanMetric()
        self.test_set_names = list(test_set_names or [])
        self.test_metrics = nn.ModuleDict(
            {f"{s}_{k}": MeanMetric() for s in self.test_set_names for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")}
        )
        self.test_rows: list[dict] = []

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.net(lr)

    # -- training -----------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        lr, hr = batch
        loss = F.l1_loss(self.net(lr), hr)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=lr.shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}

    # -- evaluation -----------------------------------------------------------------------------
    def _score(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sr = self.net(lr)
        expected = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        if tuple(sr.shape[-2:]) != expected:
            raise RuntimeError(f"network output {tuple(sr.shape[-2:])} for LR {tuple(lr.shape[-2:])}; expected {expected}")
        return psnr_ssim_y(sr.float(), hr, self.scale)

    def validation_step(self, batch, batch_idx: int) -> None:
        lr, hr, _ = batch
        psnr, ssim = self._score(lr, hr)
        self.val_psnr.update(psnr)
        self.val_ssim.update(ssim)
        self.log("val/psnr", self.val_psnr, prog_bar=True, on_epoch=True, batch_size=lr.shape[0])
        self.log("val/ssim", self.val_ssim, on_epoch=True, batch_size=lr.shape[0])

    def on_test_epoch_start(self) -> None:
        self.test_rows = []

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        lr, hr, index = batch
        set_name = self.test_set_names[dataloader_idx]
        psnr, ssim = self._score(lr, hr)
        b_psnr, b_ssim = psnr_ssim_y(self.bicubic(lr), hr, self.scale)
        names = self.trainer.datamodule.test_data[dataloader_idx].names if self.trainer.datamodule else None
        for key, value in (("psnr", psnr), ("ssim", ssim), ("bicubic_psnr", b_psnr), ("bicubic_ssim", b_ssim)):
            metric = self.test_metrics[f"{set_name}_{key}"]
            metric.update(value)
            self.log(f"test/{set_name}/{key}", metric, on_epoch=True, batch_size=lr.shape[0], add_dataloader_idx=False)
        for i in range(lr.shape[0]):
            idx = int(index[i])
            self.test_rows.append({
                "set": set_name, "scale": self.scale, "image": names[idx] if names else str(idx),
                "psnr": float(psnr[i]), "ssim": float(ssim[i]),
                "bicubic_psnr": float(b_psnr[i]), "bicubic_ssim": float(b_ssim[i]),
            })

    def on_test_epoch_end(self) -> None:
        # Per-image rows from every rank, in set/image order (each image is on exactly one rank).
        if self.trainer.world_size > 1:
            gathered: list[list[dict]] = [None] * self.trainer.world_size  # type: ignore[list-item]
            torch.distributed.all_gather_object(gathered, self.test_rows)
            self.test_rows = [row for rows in gathered for row in rows]
        order = {name: i for i, name in enumerate(self.test_set_names)}
        self.test_rows.sort(key=lambda r: (order[r["set"]], r["image"]))
