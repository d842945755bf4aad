"""AWSRN: every attention at every scale trains, official checkpoints (legacy weight-norm names)
load through the declared format, and the input normalisation is the official one in [0, 1] terms.

Full-size parameter counts of the paper's rows are checked in tests/test_params.py.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.backbones import BACKBONES, build_backbone
from lit_sisr.backbones.awsrn import AWSRN
from lit_sisr.backbones.common import DIV2K_MEAN

SMALL = BACKBONES.get("awsrn").tiny  # the declared tiny variant


def _official_state_dict_keys(n_blocks: int = 4, n_awru: int = 4) -> list[str]:
    """Parameter names of a ChaofWang/AWSRN checkpoint (``nn.utils.weight_norm`` convs)."""

    def wn(prefix: str) -> list[str]:
        return [f"{prefix}.weight_g", f"{prefix}.weight_v", f"{prefix}.bias"]

    def scales(prefix: str) -> list[str]:
        return [f"{prefix}.res_scale.scale", f"{prefix}.x_scale.scale"]

    keys = wn("head.0") + wn("skip.0")
    for i in range(n_blocks):
        for j in range(n_awru):
            unit = f"body.{i}.b{j}"
            keys += wn(f"{unit}.body.0") + wn(f"{unit}.body.2") + scales(unit)
        keys += wn(f"body.{i}.reduction") + scales(f"body.{i}")
    for k in (3, 5, 7, 9):
        keys += wn(f"tail.tail_k{k}") + [f"tail.scale_k{k}.scale"]
    return keys


def test_official_checkpoint_loads_with_weight_norm_applied() -> None:
    torch.manual_seed(0)
    net = build_backbone("awsrn", 4, "original")
    # Shapes from our own tensors: original0 is g, original1 is v in torch's parametrization.
    legacy = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}
    ours = {}
    for key, value in net.state_dict().items():
        for new, old in legacy.items():
            key = key.replace(new, old)
        ours[key] = value
    assert sorted(ours) == sorted(_official_state_dict_keys())
    official = {k: torch.randn_like(v) for k, v in ours.items()}

    net.load_state_dict(AWSRN.authors_formats["official"].convert(official), strict=True)
    g, v = official["tail.tail_k7.weight_g"], official["tail.tail_k7.weight_v"]
    expected = g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(net.tail.tail_k7.weight, expected)
    torch.testing.assert_close(net.body[2].b3.x_scale.scale, official["body.2.b3.x_scale.scale"])


def test_input_normalisation_is_the_official_one_in_unit_range() -> None:
    # Official forward on [0, 255]: y = core((x - 255 mean) / 127.5) * 127.5 + 255 mean.
    torch.manual_seed(0)
    normalised = build_backbone("awsrn", 2, "original", **SMALL)
    core = build_backbone("awsrn", 2, "original", input_norm=False, **SMALL)
    core.load_state_dict(normalised.state_dict())
    mean = torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1)
    x255 = 255 * torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        official = core((x255 - 255 * mean) / 127.5) * 127.5 + 255 * mean
        torch.testing.assert_close(normalised(x255 / 255), official / 255)


def test_weight_norm_uses_the_parametrization_api() -> None:
    net = build_backbone("awsrn", 2, "original", **SMALL)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") and "weight" in m.parametrizations for m in convs)
