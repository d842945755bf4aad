"""``LitSR``: the LightningModule that trains and evaluates any registered backbone.

Training: L1 loss on RGB in [0, 1], Adam (lr 1e-4) and a step schedule halving the learning rate
every 200 epochs (BAM paper Sec. 4.1; docs/protocol.md, "The paper's training protocol"), all from config.
Evaluation: per image, under the run's ``protocol`` (:mod:`lit_sisr.protocols`: ``standard`` is
:mod:`lit_sisr.metrics`, ``bam_paper`` the BAM authors' evaluation), through
:mod:`lit_sisr.scoring` (the code path of ``eval.py`` too); dataset figures are torchmetrics
``MeanMetric``s of per-image values, so they are exact means under DDP as long as each image is
seen once (the DataModule's samplers guarantee that). Every test step also scores MATLAB bicubic
upscaling of the same LR image, so each test table carries its baseline row.

Built from config like the rest (``conf/module/default.yaml``: network, optimizer and scheduler
nested, as lightning-hydra-template does).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from lit_sisr.data.samplers import mark_resumed_epoch_started
from lit_sisr.protocols import get_protocol
from lit_sisr.scoring import METRICS, image_rows, score_images, super_resolve

log = logging.getLogger(__name__)


class LitSR(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        scale: int,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        test_set_names: list[str] | None = None,
        config: dict | None = None,
        channels_last: bool = False,
        compile: bool = False,
        inference: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
        protocol: str = "standard",
    ) -> None:
        super().__init__()
        # The network is rebuilt from ``config`` (the resolved run config, plain data) when a
        # checkpoint is loaded; callables and modules stay out of the checkpoint.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "inference"])
        self.net = net
        self.inference = inference
        # How SR outputs are scored (lit_sisr.protocols; the DataModule makes the pairs to match).
        self.protocol = get_protocol(protocol)
        self.scale = scale
        self.optimizer_factory = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-4))
        self.scheduler_factory = scheduler
        # nan_strategy="disable": the default ("warn") checks every update for NaN with a host sync
        # (a GPU round trip per image), and would drop a NaN image from the mean; disabled, a NaN
        # image makes the set's mean NaN, which is visible.
        self.val_psnr, self.val_ssim = MeanMetric(nan_strategy="disable"), MeanMetric(nan_strategy="disable")
        # The epoch mean of the training loss (logged as train/loss_epoch), patch-weighted. Persistent:
        # its running sums are in state_dict, so a checkpoint written mid-epoch carries them and a
        # resumed epoch's mean is the uninterrupted run's (Lightning's own self.log aggregate is not
        # checkpointed). weights.load_network reads only the net. keys.
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.train_loss.persistent(True)
        self.test_set_names = list(test_set_names or [])
        self.test_metrics = nn.ModuleDict(
            {
                f"{s}_{k}": MeanMetric(nan_strategy="disable")
                for s in self.test_set_names
                for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")
            }
        )
        self.test_rows: list[dict] = []
        # Speed knobs (docs/benchmarks.md), applied in setup() so that they happen in every process.
        self.channels_last, self.compile_net = channels_last, compile

    def setup(self, stage: str) -> None:
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_net and getattr(self.net, "_compiled_call_impl", None) is None:
            # nn.Module.compile() compiles the network in place: parameter names (and so
            # checkpoints) stay those of the eager network. Never torch.compile(LightningModule):
            # it crashes in self.log with torch 2.13 + PL 2.6.6 (docs/ecosystem.md, item 4).
            self.net.compile()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 images (``data.train_dtype=uint8``) become levels / 255 on the model's device,
        as :func:`lit_sisr.data.io.to_float` would have made them; with ``channels_last`` images
        are laid out NHWC for the network."""
        if not isinstance(batch, (list, tuple)):
            return batch
        return type(batch)(self._image(t) for t in batch)

    def _image(self, t: Any) -> Any:
        if not (torch.is_tensor(t) and t.dim() == 4):
            return t
        if t.dtype == torch.uint8:
            t = t.float().div_(255)
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.net(lr)

    # -- training -----------------------------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A checkpoint written before ``train_loss`` was kept (no ``train_loss.*`` keys) still loads:
        metric states are not buffers, so a strict load does not miss them. Resumed mid-epoch, its
        epoch's ``train/loss_epoch`` then averages only the steps after the resume: say so."""
        state = checkpoint.get("current_model_state") or checkpoint.get("state_dict") or {}
        batches = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
        mid_epoch = batches.get("current", {}).get("ready", 0) > 0 and not batches.get("is_last_batch", True)
        if mid_epoch and "train_loss.weight" not in state:
            log.warning(
                "the checkpoint has no running mean of the training loss (written by an older lit-sisr): "
                "train/loss_epoch of the epoch it resumes averages only the steps after the resume"
            )

    def on_train_start(self) -> None:
        # A Lightning 2.6.6 progress-counter fix for exact resume (docs/reliability.md).
        mark_resumed_epoch_started(self.trainer)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        lr, hr = batch
        loss = F.l1_loss(self.net(lr), hr)
        if batch_idx == 0:  # a new epoch (also after a resume from an epoch's last batch)
            self.train_loss.reset()
        # Patch-weighted as one value per patch: with nan_strategy="disable" (no host sync)
        # MeanMetric.update ignores its weight argument (torchmetrics 1.9; docs/reliability.md).
        self.train_loss.update(loss.detach().expand(lr.shape[0]))
        # The step value as it is, the epoch mean from the metric: the keys of one forked
        # self.log(on_step, on_epoch), whose epoch aggregate Lightning does not checkpoint.
        # Not prog_bar=True: Lightning 2.6.6 turns every prog_bar value into a Python number after
        # each step (_LoggerConnector.on_batch_end), a host-device sync per step. The progress bar
        # (lit_sisr.callbacks.ProgressBar) reads the loss only when it redraws (docs/benchmarks.md).
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, batch_size=lr.shape[0])
        self.log("train/loss_epoch", self.train_loss, on_step=False, on_epoch=True, batch_size=lr.shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"},
        }

    # -- evaluation -----------------------------------------------------------------------------
    # ``inference`` (lit_sisr.inference.Inference: self-ensemble, tiles) maps (net, lr) to SR; a
    # plain value, not a module, so checkpoints are unchanged. Scoring is lit_sisr.scoring's, the
    # code path of eval.py too.
    def validation_step(self, batch, batch_idx: int) -> None:
        lr, hr, _ = batch
        psnr, ssim = self.protocol.score(super_resolve(self.net, lr, self.scale, self.inference), hr, self.scale)
        self.val_psnr.update(psnr)
        self.val_ssim.update(ssim)
        self.log("val/psnr", self.val_psnr, prog_bar=True, on_epoch=True, batch_size=lr.shape[0])
        self.log("val/ssim", self.val_ssim, on_epoch=True, batch_size=lr.shape[0])

    def on_test_epoch_start(self) -> None:
        self.test_rows = []

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        lr, hr, index = batch
        set_name = self.test_set_names[dataloader_idx]
        _, values = score_images(self.net, lr, hr, self.scale, self.protocol, self.inference)
        for key, value in zip(METRICS, values.unbind(1)):
            metric = self.test_metrics[f"{set_name}_{key}"]
            metric.update(value)
            self.log(f"test/{set_name}/{key}", metric, on_epoch=True, batch_size=lr.shape[0], add_dataloader_idx=False)
        data = self.trainer.datamodule.test_data[dataloader_idx] if self.trainer.datamodule else None
        indices = index.tolist()
        names = [data.names[i] for i in indices] if data is not None else [str(i) for i in indices]
        self.test_rows += image_rows(set_name, self.scale, names, values, data.lr_source if data is not None else "")

    def on_test_epoch_end(self) -> None:
        # Per-image rows from every rank, in set/image order (each image is on exactly one rank).
        if self.trainer.world_size > 1:
            gathered: list[list[dict]] = [None] * self.trainer.world_size  # type: ignore[list-item]
            torch.distributed.all_gather_object(gathered, self.test_rows)
            self.test_rows = [row for rows in gathered for row in rows]
        order = {name: i for i, name in enumerate(self.test_set_names)}
        self.test_rows.sort(key=lambda r: (order[r["set"]], r["image"]))
