"""Inference options for evaluation and prediction: x8 self-ensemble and tiled inference.

Self-ensemble ("geometric self-ensemble", Lim et al., EDSR, CVPRW 2017, Sec. 4; after Timofte
et al., "Seven ways to improve example-based single image super resolution", CVPR 2016): the LR
image goes through the network in the 8 orientations of the dihedral group (4 rotations, each
with and without a horizontal flip); each output is transformed back and the 8 are averaged. The
result is exactly equivariant to flips and 90-degree rotations whatever the network.

Tiled inference: the LR image is cut into ``tile`` x ``tile`` cores; each core is run with
``overlap`` LR pixels of real context on every side (clipped at the image border) and only the
core's part of the output is kept. The network never sees more than
``(tile + 2 * overlap)`` pixels a side, so memory is bounded by the tile, not the image.

Exactness. For a network whose every operation is spatially local, an output pixel depends only
on the LR pixels within its receptive radius (:func:`receptive_radius`); with ``overlap`` at
least that radius every kept output pixel sees exactly the input it sees in whole-image
inference (at the image border the tile border *is* the image border, so the network's own zero
padding is the same), and the tiled output equals the whole-image output up to float rounding.
Attention that pools over the whole feature map (every registered module that does not declare
itself ``local``, see :mod:`lit_sisr.attention`: BAM, ACAM, CBAM, RCAN's CA, IMDN's CCA, DRLN's
LA, and any user module that says nothing) makes every output pixel depend on the whole
image: no overlap makes tiling exact. Such networks are refused by default
(:class:`NotTileableError`); ``exact=False`` tiles them anyway, with a warning, as an
approximation (each tile pools over its own padded region).
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator, Mapping

import torch
from torch import nn

from lit_sisr.attention import ATTENTION, global_context, is_local
from lit_sisr.backbones import BACKBONES
from lit_sisr.errors import UserError

Forward = Callable[[torch.Tensor], torch.Tensor]


class NotTileableError(UserError, ValueError):
    """Tiled inference was asked to be exact for a network that cannot be tiled exactly."""


def backbone_name(net: nn.Module) -> str:
    """The registry name of ``net``'s class (``type(net).__name__`` for unregistered networks)."""
    for name in BACKBONES.names():
        if type(net) is BACKBONES.get(name):
            return name
    return type(net).__name__


def global_context_sites(net: nn.Module) -> list[str]:
    """``"<module path> (<attention name>: why)"`` for every attention module of ``net`` that does
    not declare itself local (:func:`lit_sisr.attention.is_local`), plus any adaptive pooling layer."""
    names = {ATTENTION.get(name): name for name in ATTENTION.names()}
    sites = []
    for path, module in net.named_modules():
        name = names.get(type(module))
        if name is not None and not is_local(type(module)):
            sites.append(f"{path or '<net>'} ({name}: {global_context(type(module))})")
        elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            sites.append(f"{path} ({type(module).__name__})")
    return sites


_RADIUS_CACHE: "weakref.WeakKeyDictionary[nn.Module, int]" = weakref.WeakKeyDictionary()


def receptive_radius(net: nn.Module, probe_size: int = 12) -> int:
    """An upper bound R on the reach of ``net`` in LR pixels: output pixels of LR position
    (y, x) depend only on LR pixels (y', x') with |y - y'| <= R and |x - x'| <= R (ignoring
    global poolings, which :func:`global_context_sites` reports).

    Found from the network itself: one forward pass on a ``probe_size`` image with a hook on
    every ``nn.Conv2d`` call (a shared module called twice counts twice). A conv with kernel k,
    dilation d and padding p reaches max(p, d (k - 1) - p) pixels of its input; an input at f
    times the LR resolution (after a pixel shuffle or an upsampling by f) reaches that / f LR
    pixels. Any dependency path from an output pixel to an input pixel goes through some of these
    calls, one after another, so its reach is at most the sum over all calls: R is the ceiling of
    that sum (ceil, because HR pixels of one LR pixel share its position: a reach of b HR pixels
    is ceil(b / f) LR pixels), plus the backbone's declared ``functional_reach`` for spatial operations that
    are not conv modules (class attribute, 0 when absent). Pointwise operations (activations, 1x1 convs, products, sums, concatenations,
    pixel shuffle, nearest upsampling by an integer factor) reach nothing. Convs on 1x1 maps act
    after a global pooling and are skipped. The bound is tight for chains of convs and loose
    where branches run in parallel (MSRN's 3x3/5x5 pairs): tiling stays exact, only the overlap
    is larger than necessary. ``tests/test_inference.py`` checks it against the exact reach of
    every backbone.
    """
    cached = _RADIUS_CACHE.get(net)
    if cached is not None:
        return cached
    reach = Fraction(0)

    def count(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...]) -> None:
        nonlocal reach
        if module.stride != (1, 1):
            raise NotTileableError(f"{type(net).__name__}: strided conv {module}; tiles would not align with its grid")
        sizes = inputs[0].shape[-2:]
        if tuple(sizes) == (1, 1):
            return
        axes = []
        for size, k, d, p in zip(sizes, module.kernel_size, module.dilation, module.padding):
            # ``padding="same"`` is a string; a same conv reaches half its dilated kernel.
            p = d * (k - 1) // 2 if isinstance(p, str) else p
            axes.append(Fraction(max(p, d * (k - 1) - p) * probe_size, size))
        reach += max(axes)

    hooks = [m.register_forward_pre_hook(count) for m in net.modules() if isinstance(m, nn.Conv2d)]
    was_training = net.training
    try:
        like = next(iter(net.parameters()), None)
        device = like.device if like is not None else torch.device("cpu")
        dtype = like.dtype if like is not None and like.is_floating_point() else torch.float32
        with torch.no_grad():
            net.eval()  # a probe, not a training step: no running statistics may move
            net(torch.rand(1, 3, probe_size, probe_size, device=device, dtype=dtype))
    finally:
        net.train(was_training)
        for hook in hooks:
            hook.remove()
    radius = math.ceil(reach) + getattr(type(net), "functional_reach", 0)
    _RADIUS_CACHE[net] = radius
    return radius


def _spans(length: int, tile: int, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    """(core start, core end, padded start, padded end) along one axis."""
    for start in range(0, length, tile):
        end = min(start + tile, length)
        yield start, end, max(start - overlap, 0), min(end + overlap, length)


def check_tileable(net: nn.Module, overlap: int | None, exact: bool) -> int:
    """The overlap to use: ``overlap`` or, when None, :func:`receptive_radius`. With ``exact``,
    refuse what would not reproduce whole-image inference; otherwise warn."""
    name = backbone_name(net)
    sites = global_context_sites(net)
    if sites:
        message = (
            f"tiled inference of {name} cannot be exact: {len(sites)} attention module(s) pool over the "
            f"whole feature map, e.g. {sites[0]}, so every output pixel depends on the whole image"
        )
        if exact:
            raise NotTileableError(
                message + "; run it untiled (tile=null) or accept an approximation (tile_exact=false)"
            )
        warnings.warn(message + "; tiles pool over their own region only: the output is an approximation", stacklevel=3)
    radius = receptive_radius(net)
    if overlap is None:
        return radius
    if overlap < 0:
        raise ValueError(f"tile_overlap must be >= 0, got {overlap}")
    if overlap < radius:
        message = f"tile_overlap={overlap} is below the receptive radius {radius} of {name}"
        if exact:
            raise NotTileableError(message + f"; use tile_overlap>={radius} (or null) or tile_exact=false")
        warnings.warn(message + ": pixels near tile seams will differ from whole-image inference", stacklevel=3)
    return overlap


def tiled_forward(
    net: nn.Module, lr: torch.Tensor, tile: int, overlap: int | None = None, *, exact: bool = True
) -> torch.Tensor:
    """``net(lr)`` computed tile by tile (see the module docstring).

    ``overlap`` defaults to the receptive radius (exact). Tiles run on the device of ``net``'s
    parameters; the output is assembled on ``lr``'s device, so a large image can stay in host
    memory while only tiles visit the accelerator.
    """
    if tile < 1:
        raise ValueError(f"tile must be a positive number of LR pixels, got {tile}")
    return _tiled(net, lr, tile, check_tileable(net, overlap, exact))


def _tiled(net: nn.Module, lr: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """:func:`tiled_forward` with the overlap already checked (once per image, not per pass)."""
    if lr.dim() != 4:
        raise ValueError(f"tiled_forward expects N x C x H x W, got shape {tuple(lr.shape)}")
    like = next(iter(net.parameters()), None)
    device = like.device if like is not None else lr.device
    h, w = lr.shape[-2:]
    out: torch.Tensor | None = None
    scale = 0
    for y0, y1, py0, py1 in _spans(h, tile, overlap):
        for x0, x1, px0, px1 in _spans(w, tile, overlap):
            sr = net(lr[..., py0:py1, px0:px1].to(device))
            if out is None:
                scale = sr.shape[-2] // (py1 - py0)
                if sr.shape[-2] != scale * (py1 - py0) or sr.shape[-1] != scale * (px1 - px0):
                    raise RuntimeError(
                        f"{backbone_name(net)}: output {tuple(sr.shape[-2:])} is not an integer "
                        f"multiple of its tile {(py1 - py0, px1 - px0)}"
                    )
                out = torch.empty(*lr.shape[:-3], sr.shape[-3], h * scale, w * scale, dtype=sr.dtype, device=lr.device)
            core = sr[..., (y0 - py0) * scale : (y1 - py0) * scale, (x0 - px0) * scale : (x1 - px0) * scale]
            out[..., y0 * scale : y1 * scale, x0 * scale : x1 * scale] = core.to(lr.device)
    assert out is not None
    return out


# The 8 orientations: (number of 90-degree rotations, horizontal flip first).
DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))


def orient(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Flip (optionally) then rotate by k * 90 degrees in the H, W plane."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-2, -1))


def unorient(y: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """The inverse of :func:`orient`."""
    y = torch.rot90(y, -k, dims=(-2, -1))
    return y.flip(-1) if flip else y


def self_ensemble(forward: Forward, lr: torch.Tensor) -> torch.Tensor:
    """Mean over the 8 orientations of ``unorient(forward(orient(lr)))`` (x8 self-ensemble).

    One orientation at a time, so memory is that of one forward pass plus the running sum.
    """
    total = None
    for k, flip in DIHEDRAL:
        sr = unorient(forward(orient(lr, k, flip)), k, flip)
        total = sr if total is None else total + sr
    return total / len(DIHEDRAL)


# The task-config keys of the test-time options (conf/eval.yaml, conf/predict.yaml).
INFERENCE_KEYS = ("self_ensemble", "tile", "tile_overlap", "tile_exact")


@dataclass(frozen=True)
class Inference:
    """How to run a network at test time: ``Inference(...)(net, lr)`` -> SR.

    ``self_ensemble``: average over the 8 flips/rotations. ``tile``: LR tile side (None: whole
    image); ``tile_overlap``: LR context per side (None: the network's receptive radius, exact);
    ``tile_exact``: refuse tiling that would not equal whole-image inference (else warn).
    A plain value object, not an ``nn.Module``, so holding one adds nothing to a state dict.
    """

    self_ensemble: bool = False
    tile: int | None = None
    tile_overlap: int | None = None
    tile_exact: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.self_ensemble, bool):
            raise ValueError(f"self_ensemble={self.self_ensemble!r}: expected true or false")
        if self.tile is not None and (isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile < 1):
            raise ValueError(f"tile={self.tile!r}: expected a positive number of LR pixels, or null for whole images")
        if self.tile_overlap is not None and (
            isinstance(self.tile_overlap, bool) or not isinstance(self.tile_overlap, int) or self.tile_overlap < 0
        ):
            raise ValueError(
                f"tile_overlap={self.tile_overlap!r}: expected a number of LR pixels >= 0, or null "
                "for the network's receptive radius"
            )
        if not isinstance(self.tile_exact, bool):
            raise ValueError(f"tile_exact={self.tile_exact!r}: expected true or false")

    @classmethod
    def from_config(cls, cfg: Mapping) -> "Inference":
        """From the ``self_ensemble``, ``tile``, ``tile_overlap``, ``tile_exact`` keys of a task
        config (``conf/eval.yaml``, ``conf/predict.yaml``); missing keys take the defaults."""
        return cls(**{k: cfg[k] for k in INFERENCE_KEYS if k in cfg})

    @property
    def is_plain(self) -> bool:
        return not self.self_ensemble and self.tile is None

    def describe(self) -> str:
        """A short label for tables and file names: '' for plain inference."""
        parts = ["self-ensemble x8"] if self.self_ensemble else []
        if self.tile is not None:
            parts.append(f"tiles {self.tile}" + ("" if self.tile_exact else " (approximate)"))
        return ", ".join(parts)

    def forward_fn(self, net: nn.Module) -> Forward:
        if self.tile is None:
            return net
        # Checked once, before the first of up to 8 passes: the receptive radius walks the network.
        overlap = check_tileable(net, self.tile_overlap, self.tile_exact)
        return lambda lr: _tiled(net, lr, self.tile, overlap)

    def __call__(self, net: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        forward = self.forward_fn(net)
        return self_ensemble(forward, lr) if self.self_ensemble else forward(lr)


def inference_from_config(cfg: Mapping, net: nn.Module) -> Inference | None:
    """The ``self_ensemble`` / ``tile*`` options of a task config (``conf/eval.yaml``,
    ``conf/predict.yaml``) for ``net``; None for plain ``net(lr)``. Exact tiling of a network that
    cannot be tiled exactly is refused here (:class:`NotTileableError`), before any image."""
    inference = Inference.from_config(cfg)
    if inference.tile is not None:
        check_tileable(net, inference.tile_overlap, inference.tile_exact)
    return None if inference.is_plain else inference
