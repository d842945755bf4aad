"""SR networks, one file per family, built by name.

Every backbone is registered in :data:`BACKBONES` and constructed as
``cls(scale=..., attention=<AttentionFactory | name>, **architecture_options)``. It takes RGB in
[0, 1] (N x 3 x h x w) and returns RGB in [0, 1] (N x 3 x h*scale x w*scale); any mean shift or
normalisation the published network needs happens inside it. Class attribute ``scales`` lists the
scales a network supports.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from torch import nn

from lit_sisr.attention import AttentionFactory
from lit_sisr.registry import Registry

BACKBONES: Registry[type[nn.Module]] = Registry("model")


def register_backbone(name: str):
    return BACKBONES.register(name)


def build_backbone(
    name: str, scale: int, attention: "AttentionFactory | str | None" = None, **options: Any
) -> nn.Module:
    """Build network ``name`` for ``scale`` with ``attention`` at its attention sites."""
    cls = BACKBONES.get(name)
    scales = getattr(cls, "scales", (2, 3, 4))
    if scale not in scales:
        raise ValueError(f"model {name!r} does not support scale={scale}; it supports {list(scales)}")
    return cls(scale=scale, attention=attention, **options)


def count_parameters(net: nn.Module) -> int:
    """``sum(p.numel())`` over all parameters, frozen ones included (how expected_params.json counts)."""
    return sum(p.numel() for p in net.parameters())


# One module per network family; each registers its networks when imported. Helper modules
# (``common``, names starting with "_") register nothing.
for _info in pkgutil.iter_modules(__path__):
    if _info.name != "common" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["BACKBONES", "build_backbone", "count_parameters", "register_backbone"]
