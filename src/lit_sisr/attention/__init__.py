"""Attention modules as a config axis.

Every module takes ``channels`` first and returns a tensor shaped like its input. Modules are
looked up by name in :data:`ATTENTION`; backbones never import a module class directly but call
an :class:`AttentionFactory` at each attention site, so ``attention=bam`` swaps the module at
every site of every network without "-BAM" twin classes.

The special name ``original`` means "whatever the published network has at this site" (its
*native* module: RCAN's CA, IMDN's CCA, PAN's PA, DRLN's LA, or nothing for networks without
attention). ``none`` removes attention at the site (an identity).

A module declares its own facts where it is defined: its options are the keyword parameters of
its constructor (:func:`attention_options`), and a class attribute ``local = True`` says that
its output at a pixel depends only on a neighbourhood of that pixel, so tiled inference can be
exact (:mod:`lit_sisr.inference`). A module that does not declare itself local is treated as
pooling over the whole image; ``global_context`` may say how (it appears in the tiling refusal).
Every module file of this package is imported by the loop at the end (as for backbones); a
module outside the package is named by ``class_path`` (``my_module.MyAttention``) and registered
when a factory first asks for it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
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


def attention_options(cls: type[nn.Module]) -> dict[str, Any]:
    """A module's options and their defaults: the parameters of its constructor after ``channels``."""
    params = list(inspect.signature(cls).parameters.values())[1:]
    return {p.name: None if p.default is inspect.Parameter.empty else p.default for p in params}


def is_local(cls: type[nn.Module]) -> bool:
    """Whether the module declares itself spatially local (``local = True``); undeclared is global."""
    return getattr(cls, "local", False) is True


def global_context(cls: type[nn.Module]) -> str:
    """How a non-local module sees the whole image (its ``global_context``, else a default)."""
    return getattr(cls, "global_context", "") or "not declared local, so treated as pooling over the image"


def import_attention(class_path: str) -> type[nn.Module]:
    """The class at ``class_path`` (``package.module.Class``), imported with importlib and checked
    to be an ``nn.Module`` whose constructor takes ``channels`` first."""
    module_name, _, class_name = class_path.rpartition(".")
    if not module_name:
        raise ValueError(f"attention class_path={class_path!r}: expected 'module.ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"attention class_path={class_path!r}: cannot import {module_name!r} ({error}); "
            "is its folder on PYTHONPATH?"
        ) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"attention class_path={class_path!r}: {module_name} has no nn.Module class {class_name!r}")
    params = list(inspect.signature(cls).parameters)
    if not params or params[0] != "channels":
        raise ValueError(
            f"attention class_path={class_path!r}: the constructor must take 'channels' first, "
            f"it takes ({', '.join(params)})"
        )
    return cls


class AttentionFactory:
    """Builds the attention module a backbone asks for at one site.

    ``options`` are the user's settings (``attention.reduction=8``); a value of ``None`` means
    "not set", so the backbone's default applies. Backbones call
    ``factory(channels, native="cca", reduction=16)``: ``native`` names the published module
    at that site and keyword defaults are the values the BAM authors used in that network
    (``reduction=8`` in AWSRN and PAN, docs/architectures.md). ``class_path`` names a module
    outside the package (``toy_attention.ToyAttention``), registered under ``name``.
    """

    def __init__(self, name: str = ORIGINAL, class_path: str | None = None, **options: Any) -> None:
        if class_path is not None:
            cls = import_attention(class_path)
            if name in (ORIGINAL, *ATTENTION.names()) and (name == ORIGINAL or ATTENTION.get(name) is not cls):
                raise ValueError(f"attention name={name!r} is taken; give the class at {class_path!r} another name")
            if name not in ATTENTION:
                ATTENTION.register(name)(cls)
        elif name != ORIGINAL:
            ATTENTION.get(name)  # fail early, listing the valid names
        self.name = name
        self.class_path = class_path
        self.options = {k: v for k, v in options.items() if v is not None}

    def resolve(self, native: str = "none") -> str:
        """The registry name built at a site whose published module is ``native``."""
        return native if self.name == ORIGINAL else self.name

    def __call__(self, channels: int, *, native: str = "none", **defaults: Any) -> nn.Module:
        name = self.resolve(native)
        cls = ATTENTION.get(name)
        accepted = set(attention_options(cls))
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


# Each module file registers its modules when imported; it has no other side effect.
for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "ATTENTION",
    "ORIGINAL",
    "AttentionFactory",
    "as_factory",
    "attention_names",
    "attention_options",
    "global_context",
    "import_attention",
    "is_local",
    "register_attention",
]
