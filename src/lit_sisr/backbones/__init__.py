"""SR networks, one file per family, built by name.

Every backbone is registered in :data:`BACKBONES` and constructed as
``cls(scale=..., attention=<AttentionFactory | name>, **architecture_options)``. It takes RGB in
[0, 1] (N x 3 x h x w) and returns RGB in [0, 1] (N x 3 x h*scale x w*scale); any mean shift or
normalisation the published network needs happens inside it.

A network declares its facts as class attributes where it is defined: ``scales`` (the scales it
supports), ``tiny`` (options of a tiny variant for tests and smoke runs: ``model.tiny=true``),
``functional_reach`` (LR reach of spatial operations that are functions, for the tiler, 0 when
absent), ``paper_overrides`` (options reproducing a paper row, by scale) and ``flops_note``. The
native attention at each site is what the network passes to its factory
(``factory(channels, native="cca")``); :func:`native_attention` reads it back by recording those
calls while building on the meta device, so it is never written down twice.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

import torch
from torch import nn

from lit_sisr.attention import ORIGINAL, AttentionFactory
from lit_sisr.registry import Registry

BACKBONES: Registry[type[nn.Module]] = Registry("model")


def register_backbone(name: str):
    return BACKBONES.register(name)


def build_backbone(
    name: str,
    scale: int,
    attention: "AttentionFactory | str | None" = None,
    *,
    tiny: bool = False,
    class_path: str | None = None,
    **options: Any,
) -> nn.Module:
    """Build network ``name`` for ``scale`` with ``attention`` at its attention sites; ``tiny``
    replaces ``options`` with the ones the network declares in ``tiny``. ``class_path``
    (``my_module.MyNet``) names a network outside the package, registered under ``name``."""
    if class_path is not None and name not in BACKBONES:
        module_name, _, class_name = class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name, None) if module_name else None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(f"model class_path={class_path!r}: expected 'module.ClassName' of an nn.Module")
        register_backbone(name)(cls)
    cls = BACKBONES.get(name)
    scales = getattr(cls, "scales", (2, 3, 4))
    if scale not in scales:
        raise ValueError(f"model {name!r} does not support scale={scale}; it supports {list(scales)}")
    if tiny:
        options = {**options, **getattr(cls, "tiny", {})}
    return cls(scale=scale, attention=attention, **options)


class _RecordingFactory(AttentionFactory):
    """``original`` at every site, remembering the ``native`` name each site asked for."""

    def __init__(self) -> None:
        super().__init__(ORIGINAL)
        self.natives: list[str] = []

    def __call__(self, channels: int, *, native: str = "none", **defaults: Any) -> nn.Module:
        self.natives.append(native)
        return super().__call__(channels, native=native, **defaults)


@functools.lru_cache(maxsize=None)
def native_attention(name: str) -> tuple[str, ...]:
    """The published attention at each attention site of network ``name`` (distinct names, in
    site order; ``("none",)`` for a network without attention of its own, ``()`` for one without
    attention sites), recorded while building it at its first scale on the meta device."""
    cls = BACKBONES.get(name)
    factory = _RecordingFactory()
    with torch.device("meta"):
        cls(scale=getattr(cls, "scales", (2,))[0], attention=factory)
    return tuple(dict.fromkeys(factory.natives))


def original_alias(name: str, attention: str) -> str:
    """``original`` where ``attention`` names the only native module of network ``name`` (IMDN
    with ``cca`` is IMDN as published), else ``attention``."""
    natives = native_attention(name) if name in BACKBONES else ()
    return ORIGINAL if natives == (attention,) and attention != "none" else attention


def count_parameters(net: nn.Module) -> int:
    """``sum(p.numel())`` over all parameters, frozen ones included (how expected_params.json counts)."""
    return sum(p.numel() for p in net.parameters())


# One module per network family; each registers its networks when imported. Helper modules
# (``common``, names starting with "_") register nothing.
for _info in pkgutil.iter_modules(__path__):
    if _info.name != "common" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "BACKBONES",
    "build_backbone",
    "count_parameters",
    "native_attention",
    "original_alias",
    "register_backbone",
]
