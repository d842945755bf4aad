"""The Hydra task behind ``predict.py``: super-resolve your own images (conf/predict.yaml).

``ckpt`` is a lit-sisr checkpoint (network, attention and scale come from the run config stored
in it) or an authors' weight file (then ``model=``, ``attention=`` and ``scale=`` say which
network it is, as for ``eval.py weights=...``). ``input`` is an image file or a folder of images
(PNG, JPEG, BMP, TIFF; not searched recursively); every result is written to
``<output>/<input stem>_x<scale>.png``.

Colour handling: RGB images go through the network as they are; grey images go through it as
three equal channels and are written grey (BT.601 luma of the output, Pillow's RGB -> L rule);
an alpha channel is upscaled separately with MATLAB-exact bicubic (:mod:`lit_sisr.resize`) and
written back. 16-bit and float images are refused (the networks take 8-bit images).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import nn
from tqdm import tqdm

from lit_sisr import weights
from lit_sisr.backbones import count_parameters
from lit_sisr.config_checks import check_config, check_run_config
from lit_sisr.data.io import IMAGE_SUFFIXES, ImageError, decoding_errors
from lit_sisr.errors import ConfigError, MissingFileError
from lit_sisr.inference import Inference, inference_from_config
from lit_sisr.resize import imresize

# Pillow's RGB -> L weights (ITU-R 601-2 luma).
LUMA = (0.299, 0.587, 0.114)
_HIGH_BIT_DEPTH = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


@dataclass
class InputImage:
    """An image as the network sees it (``rgb``: uint8 3 x H x W) and what to restore after."""

    path: Path
    rgb: torch.Tensor
    alpha: torch.Tensor | None  # uint8 1 x H x W
    grey: bool


def _open(path: Path, decode: bool) -> InputImage | None:
    """Check ``path``'s header (mode, bit depth); with ``decode``, decode it into RGB (+ alpha)."""
    with decoding_errors(path), Image.open(path) as im:
        mode = im.mode
        raw = str(im.tile[0].args) if getattr(im, "tile", None) else ""
        if mode in _HIGH_BIT_DEPTH or ";16" in raw:
            raise ImageError(f"{path}: 16-bit or float image ({mode}); expected an 8-bit image")
        if not decode:
            return None
        if mode == "P":
            mode = "RGBA" if "transparency" in im.info else "RGB"
        grey = mode in ("1", "L", "LA", "La")
        has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa")
        rgba = np.asarray(im.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)
    tensor = torch.from_numpy(rgba.copy()).permute(2, 0, 1)
    return InputImage(path, tensor[:3].contiguous(), tensor[3:].contiguous() if has_alpha else None, grey)


def check_input(path: Path) -> None:
    """Refuse an unreadable or 16-bit file from its header, before any image is processed."""
    _open(path, decode=False)


def read_input(path: Path) -> InputImage:
    """Decode ``path`` into RGB (+ alpha), remembering whether it was grey."""
    image = _open(path, decode=True)
    assert image is not None
    return image


def list_inputs(path: str | Path) -> list[Path]:
    """The image file ``path``, or the images directly in folder ``path``, sorted by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise MissingFileError(f"input={path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise MissingFileError(f"input={path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def output_paths(files: list[Path], output: Path, scale: int) -> list[Path]:
    """``<output>/<stem>_x<scale>.png`` for each input; two inputs may not share a stem."""
    targets = [output / f"{p.stem}_x{scale}.png" for p in files]
    seen: dict[Path, Path] = {}
    for source, target in zip(files, targets):
        if target in seen:
            raise ConfigError(f"{seen[target].name} and {source.name} would both be written to {target}; rename one")
        seen[target] = source
    return targets


def load_network(cfg: DictConfig) -> tuple[nn.Module, int, str]:
    """The network, its scale and a label, from ``ckpt`` (our checkpoint or the authors' file: one
    read, :func:`lit_sisr.weights.load_network`)."""
    if not cfg.ckpt:
        check_run_config(cfg)
        net = hydra.utils.instantiate(cfg.model)
        if count_parameters(net) > 0:
            raise ConfigError(
                f"model={cfg.model.name} has parameters: give ckpt=<lit-sisr checkpoint or authors' weight file>"
            )
        return net, int(cfg.scale), f"{cfg.model.name}-{cfg.attention.name}"
    loaded = weights.load_network(
        cfg.ckpt, kind="auto", model=cfg.model, scale=cfg.scale, check=lambda: check_run_config(cfg)
    )
    return loaded.net, loaded.scale, loaded.label


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 levels (clamped, rounded half up: the metric protocol's quantisation)."""
    return torch.floor(x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


@torch.no_grad()
def super_resolve(
    net: nn.Module, image: InputImage, scale: int, inference: Inference | None, device: torch.device
) -> Image.Image:
    """The SR image of ``image`` as a Pillow image of the input's kind (L, LA, RGB or RGBA)."""
    lr = image.rgb.float().div(255)[None]
    if inference is not None and inference.tile is not None:
        sr = inference(net, lr).float()  # tiles visit the device, the image stays in host memory
    else:
        lr = lr.to(device)
        sr = (inference(net, lr) if inference is not None else net(lr)).float().cpu()
    sr = sr[0]
    if sr.shape[-2:] != (lr.shape[-2] * scale, lr.shape[-1] * scale):
        raise RuntimeError(
            f"{image.path}: network output {tuple(sr.shape[-2:])} for LR {tuple(lr.shape[-2:])} at x{scale}"
        )
    channels = [to_levels(sum(w * c for w, c in zip(LUMA, sr.clamp(0, 1))))[None]] if image.grey else [to_levels(sr)]
    if image.alpha is not None:
        alpha = imresize(image.alpha[None].float(), float(scale))[0]  # MATLAB bicubic on 8-bit levels
        channels.append(alpha.clamp(0, 255).to(torch.uint8))
    array = torch.cat(channels).permute(1, 2, 0).numpy()
    # uint8 H x W (x 2, 3 or 4): Pillow makes it L, LA, RGB or RGBA.
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def predict(cfg: DictConfig) -> list[Path]:
    """Super-resolve every input into ``output``. The results are written into a temporary folder
    and moved into ``output`` only when every input was decoded and processed, so a
    failure (a truncated image, a bad option) leaves ``output`` as it was (docs/inference.md)."""
    check_config(cfg, "predict")  # input, output, device, tiles (also checked before the launch)
    files = list_inputs(cfg.input)
    for path in files:
        check_input(path)  # header checks: refuse a 16-bit file before loading the network
    output = Path(cfg.output)
    net, scale, label = load_network(cfg)
    targets = output_paths(files, output, scale)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    net = net.eval().to(device)
    try:
        inference = inference_from_config(cfg, net)
    except ValueError as err:  # a bad option, or exact tiles of a network that cannot be tiled exactly
        raise ConfigError(str(err)) from None
    how = f", {inference.describe()}" if inference is not None else ""
    # the staging folder sits in the nearest folder that exists already (the same file system as
    # ``output``), so a failure leaves no folder behind that was not there before
    existing = next(p for p in output.absolute().parents if p.is_dir())
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.partial-", dir=existing) as tmp:
        staged = [Path(tmp) / target.name for target in targets]
        for source, target in zip(tqdm(files, desc=f"{label} x{scale}{how}", unit="image"), staged):
            super_resolve(net, read_input(source), scale, inference, device).save(target)
        output.mkdir(parents=True, exist_ok=True)
        for source, target in zip(staged, targets):
            os.replace(source, target)  # same file system: each result appears whole
    print(f"Wrote {len(targets)} image(s) to {output}")
    return targets
