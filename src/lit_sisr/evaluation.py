"""Evaluating a network on benchmark sets under an evaluation protocol, outside Lightning.

Used by ``eval.py`` for official weights and by tests; the Lightning test loop uses the same
metric functions. Benchmarks follow the EDSR layout: ``<root>/<Set>/HR/<name>.png`` and
``<root>/<Set>/LR_bicubic/X<s>/<name>x<s>.png``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from lit_sisr.data.datasets import load_pair
from lit_sisr.data.io import list_images, to_float
from lit_sisr.errors import MissingFileError
from lit_sisr.protocols import Protocol, get_protocol


@dataclass(frozen=True)
class ImageResult:
    set: str
    scale: int
    image: str
    psnr: float
    ssim: float


def benchmark_pairs(root: str | Path, set_name: str, scale: int) -> list[tuple[str, Path, Path]]:
    """(name, HR path, LR path) for every image of a benchmark set in the EDSR layout."""
    base = Path(root) / set_name
    pairs = []
    for hr in list_images(base / "HR"):
        lr = base / "LR_bicubic" / f"X{scale}" / f"{hr.stem}x{scale}{hr.suffix}"
        if not lr.is_file():
            raise MissingFileError(f"{hr}: its LR file {lr} is missing")
        pairs.append((hr.stem, hr, lr))
    return pairs


@torch.no_grad()
def evaluate_benchmark(
    net: nn.Module, root: str | Path, set_name: str, scale: int, device: str | torch.device = "cpu",
    protocol: str | Protocol = "standard",
    inference: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> list[ImageResult]:
    """Per-image Y-PSNR/SSIM of ``net`` (RGB [0,1] in and out) on one benchmark set, with the
    pairs made and scored as ``protocol`` says (:mod:`lit_sisr.protocols`). ``inference`` (e.g. a
    :class:`lit_sisr.inference.Inference`: self-ensemble, tiles) computes ``sr`` from ``(net, lr)``
    instead of ``net(lr)``."""
    protocol = get_protocol(protocol)
    net = net.eval().to(device)
    results = []
    for name, hr_path, lr_path in benchmark_pairs(root, set_name, scale):
        lr, hr = load_pair(hr_path, str(lr_path.parent), scale, protocol)  # checks the LR size too
        lr, hr = to_float(lr)[None].to(device), to_float(hr)[None].to(device)
        sr = net(lr) if inference is None else inference(net, lr)
        expected = (lr.shape[-2] * scale, lr.shape[-1] * scale)
        if tuple(sr.shape[-2:]) != expected:
            raise RuntimeError(f"{lr_path}: output {tuple(sr.shape[-2:])}, expected {expected}")
        psnr, ssim = protocol.score(sr, hr, scale)
        results.append(ImageResult(set_name, scale, name, float(psnr), float(ssim)))
    return results


def mean_metrics(results: list[ImageResult]) -> tuple[float, float]:
    """Dataset figure: the mean over images of the per-image PSNR and SSIM."""
    n = len(results)
    return sum(r.psnr for r in results) / n, sum(r.ssim for r in results) / n
