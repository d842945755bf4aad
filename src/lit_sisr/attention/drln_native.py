"""DRLN's Laplacian attention, the native module at DRLN's attention sites.

``la``: Anwar & Barnes, "Densely Residual Laplacian Super-Resolution", TPAMI 2020, Sec. 3
("Laplacian attention"); saeed-anwar/DRLN ``model/drln.py`` ``CALayer`` with the
``ops.BasicBlock``/``BasicBlockSig`` layers. The globally average-pooled descriptor goes through
three 3x3 convs (``C -> C//r``, with bias, ReLU) dilated 3, 5 and 7 (the "Laplacian pyramid"
of receptive fields), their concatenation through a 3x3 conv ``3C//r -> C`` and a sigmoid; the
result scales the input channels. 13,900 parameters at C = 64, r = 16.

The branches keep the authors' names ``c1``..``c4``; the authors wrap each conv in a module with
a ``body`` attribute (``ca.c1.body.0.weight``), which DRLN's authors' format (``DRLN.authors_formats``)
folds into ``att.c1.0.weight``.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import register_attention

DILATIONS = (3, 5, 7)


@register_attention("la")
class LaplacianAttention(nn.Module):
    """DRLN ``CALayer``: x * sigma(conv3x3([ReLU(conv3x3_d(avgpool(x))) for d in 3, 5, 7]))."""

    global_context = "DRLN Laplacian attention on a global average pool"

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        # The convs act on the 1x1 pooled map with padding = dilation, so only their centre taps
        # see data; the full 3x3 kernels are kept because the published weights have them.
        for index, dilation in enumerate(DILATIONS, start=1):
            branch = nn.Sequential(
                nn.Conv2d(channels, hidden, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)
            )
            self.add_module(f"c{index}", branch)
        self.c4 = nn.Sequential(nn.Conv2d(hidden * len(DILATIONS), channels, 3, padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3), keepdim=True)
        pyramid = torch.cat([self.c1(y), self.c2(y), self.c3(y)], dim=1)
        return x * self.c4(pyramid)
