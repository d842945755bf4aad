"""Attention modules as a config axis.

Every module takes ``channels`` first and returns a tensor shaped like its input. Modules are
looked up by name in :data:`ATTENTION`; backbones never import a module class directly but call
an :class:`AttentionFactory` at each attention site, so ``attention=bam`` swaps the module at
every site of every network without "-BAM" twin classes.

The special name ``original`` means "whatever the published network has at this site" (its
*native* module: RCAN's CA, IMDN's CCA, PAN's PA, DRLN's LA, or nothing for networks without
attention). ``none`` removes attention at the site (an identity).
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from lit_sisr.registry import Registry

ATTENTION: Registry[type[nn.Module]] = Registry("attention")
ORIGINAL = "original"


def register_attention(name: str):
    """Class decorator adding an attention module to :data:`ATTENTION` under ``name``."""
    return ATTENTION.register(name)


def attention_names() -> list[str]:
    """Every name ``attention=`` accepts, ``original`` included."""
    return sorted([*ATTENTION.names(), ORIGINAL])


class AttentionFactory:
    """Builds the attention module a backbone asks for at one site.

    ``options`` are the user's settings (``attention.reduction=8``); a value of ``None`` means
    "not set", so the backbone's default applies. Backbones call
    ``factory(channels, native="cca", reduction=16)``: ``native`` names the published module
    at that site and keyword defaults are the values the BAM authors used in that network
    (``reduction=8`` in AWSRN and PAN, bam_reference.md section 2).
    """

    def __init__(self, name: str = ORIGINAL, **options: Any) -> None:
        if name != ORIGINAL:
            ATTENTION.get(name)  # fail early, listing the valid names
        self.name = name
        self.options = {k: v for k, v in options.items() if v is not None}

    def resolve(self, native: str = "none") -> str:
        """The registry name built at a site whose published module is ``native``."""
        return native if self.name == ORIGINAL else self.name

    def __call__(self, channels: int, *, native: str = "none", **defaults: Any) -> nn.Module:
        name = self.resolve(native)
        cls = ATTENTION.get(name)
        accepted = set(inspect.signature(cls).parameters) - {"channels"}
        unknown = set(self.options) - accepted
        if unknown and self.name != ORIGINAL:
            raise TypeError(
                f"attention {name!r} takes no option(s) {sorted(unknown)}; "
                f"it accepts {sorted(accepted) or 'no options'}"
            )
        kwargs = {k: v for k, v in {**defaults, **self.options}.items() if k in accepted}
        return cls(channels, **kwargs)

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"AttentionFactory({self.name!r}{opts})"


def as_factory(attention: "AttentionFactory | str | None") -> AttentionFactory:
    """Accept a factory, a bare name or ``None`` (= ``original``) wherever a backbone takes one."""
    if isinstance(attention, AttentionFactory):
        return attention
    return AttentionFactory(attention or ORIGINAL)


# Importing the module files fills the registry; they have no other side effects.
import lit_sisr.attention.balanced  # noqa: E402,F401
import lit_sisr.attention.drln_native  # noqa: E402,F401
import lit_sisr.attention.native  # noqa: E402,F401
import lit_sisr.attention.pan_native  # noqa: E402,F401

__all__ = [
    "ATTENTION",
    "ORIGINAL",
    "AttentionFactory",
    "as_factory",
    "attention_names",
    "register_attention",
]
