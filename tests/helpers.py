"""Helpers shared by test modules (test modules never import each other)."""
from __future__ import annotations

from pathlib import Path

import torch

from lit_sisr.backbones import BACKBONES, build_backbone

EDSR = dict(BACKBONES.get("edsr").tiny)


def tiny_edsr(attention: str = "none", **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone("edsr", 2, attention, **EDSR, **options).eval()


def lit_checkpoint(path: Path, net: torch.nn.Module, attention: str = "none") -> Path:
    """A lit-sisr checkpoint as training writes it: ``net.``-prefixed weights and the run config."""
    model = {"_target_": "lit_sisr.backbones.build_backbone", "name": "edsr", "scale": 2,
             "attention": {"_target_": "lit_sisr.attention.AttentionFactory", "name": attention}, **EDSR}
    config = {"model": model, "attention": {"name": attention}, "scale": 2}
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"config": config}}, path)
    return path
