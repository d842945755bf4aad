"""TorchScript and ONNX export (``lit_sisr.export``): outputs match eager PyTorch at two sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lit_sisr.attention import attention_names
from lit_sisr.backbones import BACKBONES, build_backbone, native_attention
from lit_sisr.errors import ConfigError
from lit_sisr.export import ExportError, export_checked, load_exported, main

from helpers import lit_checkpoint, tiny_edsr

pytest.importorskip("onnxruntime", reason="ONNX checks run the export with onnxruntime")

BACKBONE_CASES = [
    (name, attention) for name in BACKBONES.names() if native_attention(name) for attention in ("original", "bam")
]
# Every attention on the smallest backbone (original and bam are covered above).
ATTENTION_CASES = [("edsr", a) for a in attention_names() if a not in ("original", "bam")]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("name,attention", BACKBONE_CASES + ATTENTION_CASES)
def test_both_formats_match_eager_on_two_sizes(tmp_path, name, attention):
    torch.manual_seed(0)
    scale = 4 if name == "pan" else 3  # PAN x4: two nearest-upsampling stages
    net = build_backbone(name, scale, attention, tiny=True).eval()
    for fmt in ("torchscript", "onnx"):
        # 16 x 16, then batch 2 at 11 x 25: batch, H and W are free in both formats.
        assert export_checked(net, tmp_path / f"net.{fmt}", fmt, sample=16) < 1e-4


class SizeBaked(nn.Module):
    """Reads the input size as Python ints: a trace freezes them, so other sizes go wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), size=(int(x.shape[-2]) * 2, int(x.shape[-1]) * 2))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_export_that_froze_the_input_size_is_refused(tmp_path, fmt):
    with pytest.raises(ExportError, match="fixed a size it should not have"):
        export_checked(SizeBaked(), tmp_path / "net", fmt, sample=16)


def test_cli_exports_a_lit_sisr_checkpoint_and_authors_weights(tmp_path, capsys):
    net = tiny_edsr()
    ckpt = lit_checkpoint(tmp_path / "last.ckpt", net)
    main([f"ckpt={ckpt}", "format=onnx", f"output={tmp_path / 'a.onnx'}", "sample=16"])
    assert "Wrote" in capsys.readouterr().out
    x = torch.rand(1, 3, 10, 14)
    with torch.no_grad():
        expected = net(x)
    assert torch.allclose(load_exported(tmp_path / "a.onnx", "onnx")(x), expected, atol=1e-5)
    # an EDSR-PyTorch file (run on [0, 255]: docs/architectures.md); its keys fit both EDSR formats
    authors = tiny_edsr(rgb_range=255)
    weights = tmp_path / "official.pth"
    torch.save(authors.state_dict(), weights)
    main(
        [
            f"ckpt={weights}",
            "model=edsr",
            "attention=none",
            "scale=2",
            "model.n_resblocks=2",
            "model.n_feats=16",
            "+model.authors_format=official",
            "format=torchscript",
            f"output={tmp_path / 'b.pt'}",
            "sample=16",
        ]
    )
    with torch.no_grad():
        expected = authors(x)
    assert torch.allclose(load_exported(tmp_path / "b.pt", "torchscript")(x), expected, atol=1e-5)


def test_cli_errors(tmp_path):
    with pytest.raises(ConfigError, match="format=tflite: expected one of onnx, torchscript"):
        main(["format=tflite", "output=x"])
    with pytest.raises(ConfigError, match="output=<file> is required"):
        main(["format=onnx"])
    with pytest.raises(ConfigError, match="ckpt=<lit-sisr checkpoint or authors' weight file> is required"):
        main(["format=onnx", f"output={tmp_path / 'x.onnx'}"])
    with pytest.raises(ValueError, match="no weights to export"):
        export_checked(build_backbone("bicubic", 2), tmp_path / "b.onnx", "onnx")
