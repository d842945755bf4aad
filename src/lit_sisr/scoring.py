"""Scoring a network on test sets: the one code path behind ``eval.py`` and ``LitSR``'s test loop.

Per image: the network's SR output (through an :class:`lit_sisr.inference.Inference` when given:
self-ensemble, tiles), checked to be exactly LR size x scale; its figures and those of MATLAB
bicubic upscaling of the same LR image, both scored as the protocol says
(:mod:`lit_sisr.protocols`; pairs from :class:`lit_sisr.data.datasets.PairedImages`); one result
row in the schema of :data:`lit_sisr.outputs.RESULT_FIELDS`. The Lightning test loop calls
:func:`score_images` and :func:`image_rows` on its batches; ``eval.py`` calls
:func:`evaluate_set`, which decodes each image once, shows a progress bar with images/s and can
save the SR outputs as PNG.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from lit_sisr.atomic import atomic_write_bytes
from lit_sisr.backbones.bicubic import Bicubic
from lit_sisr.data.datasets import ImageSet, PairedImages
from lit_sisr.protocols import Protocol, get_protocol

# tqdm's bar with the rate always in images/s (never inverted to s/image on slow machines).
_BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]"
# Per-image figures, in the order of the values :func:`score_images` returns.
METRICS = ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")
Inference = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def super_resolve(net: nn.Module, lr: torch.Tensor, scale: int, inference: Inference | None = None) -> torch.Tensor:
    """``net(lr)`` (or ``inference(net, lr)``) as float, refused unless it is exactly LR size x scale."""
    sr = net(lr) if inference is None else inference(net, lr)
    expected = (lr.shape[-2] * scale, lr.shape[-1] * scale)
    if tuple(sr.shape[-2:]) != expected:
        raise RuntimeError(f"network output {tuple(sr.shape[-2:])} for LR {tuple(lr.shape[-2:])}; expected {expected}")
    return sr.float()


def score_images(
    net: nn.Module,
    lr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    protocol: str | Protocol = "standard",
    inference: Inference | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(SR, N x 4 float64 values in :data:`METRICS` order): the network's Y-PSNR/SSIM and those of
    MATLAB bicubic upscaling of the same LR, scored as ``protocol`` says. ``lr``/``hr`` are
    N x C x H x W in [0, 1] on the network's device."""
    protocol = get_protocol(protocol)
    sr = super_resolve(net, lr, scale, inference)
    psnr, ssim = protocol.score(sr, hr, scale)
    b_psnr, b_ssim = protocol.score(Bicubic(scale)(lr), hr, scale)
    return sr, torch.stack([v.double() for v in (psnr, ssim, b_psnr, b_ssim)], dim=1)


def image_rows(set_name: str, scale: int, images: list[str], values: torch.Tensor, lr_source: str) -> list[dict]:
    """Result rows (:data:`lit_sisr.outputs.RESULT_FIELDS`) of ``images`` from :func:`score_images`' values
    (one device-to-host transfer for the whole batch)."""
    return [
        {"set": set_name, "scale": scale, "image": image, **dict(zip(METRICS, row)), "lr_source": lr_source}
        for image, row in zip(images, values.cpu().tolist())
    ]


def _levels(sr: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> uint8 levels, rounded half up (the standard protocol's quantisation)."""
    return torch.floor(sr.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def save_png(sr: torch.Tensor, path: Path) -> None:
    """One SR output (1 x C x H x W in [0, 1]) as an 8-bit PNG, written atomically."""
    array = _levels(sr[0].cpu()).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


@torch.no_grad()
def evaluate_set(
    net: nn.Module,
    images: ImageSet,
    scale: int,
    protocol: str | Protocol = "standard",
    device: str | torch.device = "cpu",
    inference: Inference | None = None,
    save_dir: str | Path | None = None,
    progress: bool = False,
) -> list[dict]:
    """Result rows of ``net`` (RGB [0, 1] in and out) on one test set, one image at a time, each
    decoded once; with ``save_dir``, each SR output is written to ``<save_dir>/<image>_x<scale>.png``."""
    protocol = get_protocol(protocol)
    data = PairedImages(images, scale, protocol.name, preload=False)
    net = net.eval().to(device)
    rows: list[dict] = []
    bar = tqdm(
        range(len(data)),
        desc=f"{images.name} x{scale}",
        unit=" images",
        disable=not progress,
        leave=True,
        bar_format=_BAR,
    )
    for index in bar:
        lr, hr, _ = data[index]
        sr, values = score_images(net, lr[None].to(device), hr[None].to(device), scale, protocol, inference)
        rows += image_rows(images.name, scale, [data.names[index]], values, data.lr_source)
        if save_dir is not None:
            save_png(sr, Path(save_dir) / f"{data.names[index]}_x{scale}.png")
    return rows


def mean_metrics(rows: list[dict]) -> tuple[float, float]:
    """Dataset figure: the mean over images of the per-image PSNR and SSIM."""
    n = len(rows)
    return sum(r["psnr"] for r in rows) / n, sum(r["ssim"] for r in rows) / n


class Stopwatch:
    """Images and seconds of an evaluation, for its closing line."""

    def __init__(self) -> None:
        self.start, self.images = time.perf_counter(), 0

    def summary(self) -> str:
        seconds = time.perf_counter() - self.start
        return f"Evaluated {self.images} image(s) in {seconds:.1f} s ({self.images / max(seconds, 1e-9):.2f} images/s)"
