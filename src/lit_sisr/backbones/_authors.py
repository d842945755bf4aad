"""Authors' checkpoint formats, declared beside each network.

A network class lists, in ``authors_formats``, every format its authors' code writes: the
original repository's (``"official"``) and the BAM repository's (``"bam"``,
dandingbudanding/BAM). Each :class:`AuthorsFormat` says which repository writes such files,
how their state-dict keys map to ours (``convert``), the pixel range that code feeds the network
(``input_range``), and the constructor options that make our network compute exactly what that
code computes (``options``: e.g. ``rgb_range=255`` with the authors' mean shift, or
``mean_shift=False`` where the BAM code comments it out). ``tests/test_golden_ports.py`` proves
every declared format against the authors' own outputs; docs/architectures.md lists them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

StateDict = dict[str, torch.Tensor]


def same_keys(state: StateDict) -> StateDict:
    """The converter of a format whose keys are already ours."""
    return dict(state)


Rule = tuple[str, "str | Callable[[re.Match[str]], str]"]


def rename_keys(*rules: Rule) -> Callable[[StateDict], StateDict]:
    """A converter applying ``re.sub(pattern, replacement, key)`` for every rule, in order, to every
    key (tensors are kept as they are)."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]

    def convert(state: StateDict) -> StateDict:
        renamed = {}
        for key, value in state.items():
            for pattern, replacement in compiled:
                key = pattern.sub(replacement, key)
            renamed[key] = value
        return renamed

    return convert


#: The BAM repository's names inside its modules (``Blanced_attention.py``): the module attribute
#: ``attention`` and its children ``ca.relu1`` (PReLU) and ``sa.conv1`` are our ``att``,
#: ``ca.act`` and ``sa.conv`` (lit_sisr.attention.balanced). Networks whose BAM sits elsewhere
#: (CARN's ``c{i}.1``, PAN's ``att1``) add their own rules before these.
BAM_MODULE_RULES: tuple[Rule, ...] = (
    (r"(^|\.)attention\.", r"\1att."),
    (r"(^|\.)ca\.relu1\.", r"\1ca.act."),
    (r"(^|\.)sa\.conv1\.", r"\1sa.conv."),
)


@dataclass(frozen=True)
class AuthorsFormat:
    """One authors' checkpoint format of a network (see the module docstring)."""

    repo: str
    convert: Callable[[StateDict], StateDict] = same_keys
    input_range: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)
    #: The attention settings whose files this format describes (None: any). The BAM repository's
    #: baseline classes do not all run like its BAM classes (its baseline MSRN keeps the 255 mean
    #: shift, its baseline DRLN drops the mean shift), so a "bam" format verified on the BAM classes
    #: only says ``("bam",)``.
    attentions: tuple[str, ...] | None = None

    def covers(self, attention: str) -> bool:
        return self.attentions is None or attention in self.attentions


OFFICIAL = "official"
BAM_REPO = "bam"
BAM_REPOSITORY = "dandingbudanding/BAM"


def authors_formats(cls: type) -> Mapping[str, AuthorsFormat]:
    """The formats a network class declares (empty for networks without released code)."""
    return getattr(cls, "authors_formats", {})
