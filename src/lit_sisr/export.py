"""Exporting a network to TorchScript or ONNX, checked against eager PyTorch.

    python -m lit_sisr.export ckpt=logs/train/runs/<run>/checkpoints/last.ckpt format=onnx output=model.onnx
    python -m lit_sisr.export ckpt=IMDN_x4.pth model=imdn scale=4 format=torchscript output=imdn_x4.pt

The network is loaded as ``predict.py`` loads it (a lit-sisr checkpoint, or an authors' file with
``model=``/``attention=``/``scale=`` and any ``model.<option>=``; conf/predict.yaml). Its
input is ``lr``, N x 3 x H x W RGB in [0, 1]; its output ``sr``, N x 3 x sH x sW, unclamped (as
the network computes it). H and W are free: both formats are traced once on a ``sample`` x
``sample`` image and then checked on that size and on a second, odd-sized one; the export fails
if any output differs from eager PyTorch by more than ``tolerance``. Self-ensemble and tiling
(:mod:`lit_sisr.inference`) are not part of the exported graph: they wrap it.

ONNX exporter. torch 2.13's ``torch.onnx.export`` defaults to the dynamo exporter
(``torch.export`` + onnxscript). We default to the TorchScript-based exporter (``dynamo=False``,
``onnx_exporter=legacy``): measured on our backbones it exports every network x attention in
0.1-0.4 s instead of 3-12 s, needs no onnxscript, and its ``dynamic_axes`` give free H/W for
every backbone; upstream calls it deprecated. ``onnx_exporter=dynamo`` uses the new exporter
(needs ``onnxscript``, ``pip install onnxscript``; opset 18 or newer) and passes the same checks
(verified on EDSR-BAM, IMDN, PAN, AWSRN-BAM, DRLN, CARN-M-CBAM). Opset 17 for the legacy
exporter: every operator of our networks has existed since opset 11 (``DepthToSpace`` for the
pixel shuffle, ``Resize`` for PAN's upsampling), and onnxruntime has run opset 17 since 1.14.
"""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from lit_sisr.errors import UserError

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_EXPORTERS = ("legacy", "dynamo")
OPSET = 17
# Upstream deprecation notices of the two tracers we rely on on purpose (see the module docstring).
_DEPRECATION_NOTICES = (
    r".*torch\.jit\.trace.* is deprecated.*",
    r".*legacy TorchScript-based ONNX export.*",
    r".*The feature will be removed.*",
)


class ExportError(UserError, RuntimeError):
    """An export that failed or does not reproduce the eager network."""


@contextmanager
def _quiet() -> Iterator[None]:
    """Hide the upstream deprecation notices of the exporters we chose (see the module docstring)."""
    with warnings.catch_warnings():
        for pattern in _DEPRECATION_NOTICES:
            warnings.filterwarnings("ignore", message=pattern)
        yield


def export_torchscript(net: nn.Module, path: str | Path, sample: torch.Tensor) -> Path:
    """``torch.jit.trace`` (the networks' Python control flow depends only on their config, so a
    trace is the whole network) saved with ``torch.jit.save``."""
    path = Path(path)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(net, sample, check_trace=False)  # export_checked compares outputs itself
    torch.jit.save(traced, str(path))
    return path


def export_onnx(
    net: nn.Module, path: str | Path, sample: torch.Tensor, exporter: str = "legacy", opset: int = OPSET
) -> Path:
    """ONNX with input ``lr`` and output ``sr``, batch, H and W dynamic."""
    if exporter not in ONNX_EXPORTERS:
        raise ValueError(f"onnx_exporter={exporter}: expected one of {', '.join(ONNX_EXPORTERS)}")
    path = Path(path)
    names = {"input_names": ["lr"], "output_names": ["sr"]}
    with _quiet():
        if exporter == "legacy":
            torch.onnx.export(
                net,
                (sample,),
                str(path),
                dynamo=False,
                opset_version=opset,
                do_constant_folding=True,
                dynamic_axes={"lr": {0: "n", 2: "h", 3: "w"}, "sr": {0: "n", 2: "sh", 3: "sw"}},
                **names,
            )
        else:
            free = {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
            torch.onnx.export(
                net,
                (sample,),
                str(path),
                dynamo=True,
                opset_version=max(opset, 18),
                dynamic_shapes=(free,),
                external_data=False,
                verbose=False,
                **names,
            )
    return path


def load_exported(path: str | Path, fmt: str):
    """A callable tensor -> tensor running the exported file (onnxruntime on CPU for ONNX)."""
    if fmt == "torchscript":
        module = torch.jit.load(str(path), map_location="cpu")
        return lambda x: module(x)
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("checking an ONNX export needs onnxruntime (pip install onnxruntime)") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(["sr"], {"lr": x.numpy()})[0])


def max_difference(path: str | Path, fmt: str, net: nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """Largest |exported - eager| over ``inputs`` (shapes must match too)."""
    run = load_exported(path, fmt)
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            expected, got = net(x), run(x)
            if got.shape != expected.shape:
                raise ExportError(
                    f"{path}: output {tuple(got.shape)} for input {tuple(x.shape)}, eager "
                    f"{tuple(expected.shape)}: the export fixed a size it should not have"
                )
            worst = max(worst, float((got - expected).abs().max()))
    return worst


def export_checked(
    net: nn.Module,
    path: str | Path,
    fmt: str,
    sample: int = 32,
    exporter: str = "legacy",
    tolerance: float = 1e-4,
    seed: int = 0,
) -> float:
    """Export ``net`` (on CPU, eval mode) and check it; returns the largest difference to eager."""
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt}: expected one of {', '.join(FORMATS)}")
    if not any(p.numel() for p in net.parameters()):
        raise ValueError(f"{type(net).__name__} has no weights to export")
    net = net.eval().cpu()
    generator = torch.Generator().manual_seed(seed)
    inputs = [
        torch.rand(1, 3, sample, sample, generator=generator),
        torch.rand(2, 3, sample - 5, sample + 9, generator=generator),
    ]  # another batch, H and W
    if fmt == "onnx":
        export_onnx(net, path, inputs[0], exporter)
    else:
        export_torchscript(net, path, inputs[0])
    difference = max_difference(path, fmt, net, inputs)
    if difference > tolerance:
        raise ExportError(f"{path}: differs from eager PyTorch by {difference:.3g} (tolerance {tolerance:g})")
    return difference


OWN_KEYS = {"format": None, "output": None, "sample": "32", "onnx_exporter": "legacy", "tolerance": "1e-4"}


def main(argv: Sequence[str] | None = None) -> Path:
    """``key=value`` arguments: ``format``, ``output``, ``sample``, ``onnx_exporter``, ``tolerance``;
    everything else (``ckpt``, ``model``, ``attention``, ``scale``, ``model.<option>``) is a Hydra
    override of conf/predict.yaml, read as ``predict.py`` reads it."""
    from hydra import compose, initialize_config_dir

    from lit_sisr.errors import ConfigError
    from lit_sisr.predict_cli import load_network

    argv = list(sys.argv[1:] if argv is None else argv)
    own = dict(OWN_KEYS)
    overrides = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"{arg}: expected key=value, e.g. format=onnx")
        if key in own:
            own[key] = value
        else:
            overrides.append(arg)
    if own["format"] not in FORMATS:
        raise ConfigError(f"format={own['format']}: expected one of {', '.join(FORMATS)}")
    if not own["output"]:
        raise ConfigError(f"output=<file> is required (e.g. model{FORMATS[own['format']]})")
    if own["onnx_exporter"] not in ONNX_EXPORTERS:
        raise ConfigError(f"onnx_exporter={own['onnx_exporter']}: expected one of {', '.join(ONNX_EXPORTERS)}")
    try:
        sample, tolerance = int(own["sample"]), float(own["tolerance"])
    except ValueError:
        raise ConfigError(
            f"sample={own['sample']}, tolerance={own['tolerance']}: expected an integer and a number"
        ) from None
    if sample < 8:
        raise ConfigError(f"sample={sample}: expected at least 8 LR pixels")
    conf = Path(__file__).resolve().parents[2] / "conf"
    if not (conf / "predict.yaml").is_file():
        raise ConfigError(f"{conf}/predict.yaml not found: run lit_sisr.export from a lit-sisr source checkout")
    import lit_sisr

    lit_sisr.register_resolvers()
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("predict", overrides=overrides)
    if not cfg.ckpt:
        raise ConfigError("ckpt=<lit-sisr checkpoint or authors' weight file> is required")
    net, scale, label = load_network(cfg)
    output = Path(own["output"])
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        difference = export_checked(net, output, own["format"], sample, own["onnx_exporter"], tolerance)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    except ExportError as err:
        raise SystemExit(f"error: {err}") from None
    print(
        f"Wrote {output} ({own['format']}, {label} x{scale}); largest difference to eager PyTorch "
        f"on {sample}x{sample} and {sample - 5}x{sample + 9} inputs: {difference:.2g}"
    )
    return output


if __name__ == "__main__":
    from lit_sisr.cli_errors import run_cli

    run_cli(main)
