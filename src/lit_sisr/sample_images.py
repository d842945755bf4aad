"""Sample crops for the W&B dashboard: bicubic | SR | HR of a few validation images per validation.

A callback rather than module code, so that runs without W&B pay nothing: it does its work only
when a ``WandbLogger`` is attached, and only for the first ``num_images`` validation images (one
extra forward each, without gradients). Under DDP each rank sees different images and the logger
writes from rank 0 only, so the crops come from rank 0's share.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from lit_sisr.backbones.bicubic import Bicubic
from lit_sisr.metrics import quantize


def centre_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` region (the whole image where it is smaller)."""
    h, w = img.shape[-2:]
    th, tw = min(size, h), min(size, w)
    top, left = (h - th) // 2, (w - tw) // 2
    return img[..., top : top + th, left : left + tw]


def side_by_side(images: list[torch.Tensor], gap: int = 4) -> np.ndarray:
    """C x H x W float images in [0, 1] of one size -> an H x W' x 3 uint8 strip with white gaps."""
    c, h, _ = images[0].shape
    white = torch.ones(c, h, gap)
    parts = [p for img in images for p in (quantize(img.float().cpu()), white)][:-1]
    strip = torch.cat(parts, dim=-1)
    if c == 1:
        strip = strip.expand(3, -1, -1)
    return (strip * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


@torch.no_grad()
def sample_crops(
    pl_module: pl.LightningModule, lr: torch.Tensor, hr: torch.Tensor, crop: int
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """For the first image of a batch: its bicubic | SR | HR centre crops (``crop`` HR pixels),
    and the whole SR and bicubic images (1 x C x H x W, for their PSNR)."""
    sr = pl_module(lr[:1])
    bicubic = Bicubic(pl_module.scale)(lr[:1])
    h, w = sr.shape[-2:]
    crops = [centre_crop(x[0], crop) for x in (bicubic, sr, hr[:1, :, :h, :w])]
    return crops, sr, bicubic


class ValidationSamples(pl.Callback):
    """Logs ``val/samples``: for each of the first ``num_images`` validation images, a strip of
    bicubic | SR | HR centre crops of ``crop`` HR pixels, captioned with the image name."""

    def __init__(self, num_images: int = 2, crop: int = 128) -> None:
        self.num_images, self.crop = num_images, crop
        self._strips: list[np.ndarray] = []
        self._captions: list[str] = []

    @staticmethod
    def _wandb(trainer: pl.Trainer) -> list[WandbLogger]:
        return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._strips, self._captions = [], []

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx >= self.num_images or trainer.sanity_checking or not self._wandb(trainer):
            return
        lr, hr, index = batch
        crops, _, _ = sample_crops(pl_module, lr, hr, self.crop)
        self._strips.append(side_by_side(crops))
        datamodule = trainer.datamodule
        names = getattr(getattr(datamodule, "val_data", None), "names", None)
        self._captions.append(f"{names[int(index[0])] if names else int(index[0])}: bicubic | SR | HR")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._strips:
            return
        for logger in self._wandb(trainer):
            logger.log_image(key="val/samples", images=self._strips, caption=self._captions, step=trainer.global_step)
        self._strips, self._captions = [], []
