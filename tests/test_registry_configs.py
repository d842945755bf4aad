"""The config groups ``model/`` and ``attention/`` match the registries, name by name and option
by option, and a network outside the package is built by ``class_path``."""

from __future__ import annotations

import inspect
import sys

import pytest
from omegaconf import OmegaConf
from torch import nn

from lit_sisr.attention import ATTENTION, ORIGINAL, attention_names, attention_options
from lit_sisr.backbones import BACKBONES, build_backbone

from refdata import REPO

CONF = REPO / "conf"


def _load(path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def _init_options(cls: type) -> set[str]:
    """Keyword options of a class, following ``**options`` up to the base classes that take them."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def test_every_network_has_its_config_and_every_config_a_network() -> None:
    files = {p.stem: _load(p) for p in (CONF / "model").glob("*.yaml")}
    assert sorted(files) == BACKBONES.names()
    for stem, node in files.items():
        assert node["_target_"] == "lit_sisr.backbones.build_backbone" and node["name"] == stem
        assert node["scale"] == "${scale}" and node["attention"] == "${attention}", stem
        accepted = _init_options(BACKBONES.get(stem)) - {"scale", "attention"}
        options = set(node) - {"_target_", "name", "scale", "attention"}
        assert options <= accepted, f"conf/model/{stem}.yaml: {sorted(options - accepted)} not taken by the network"


def test_every_attention_has_its_config_and_every_config_a_module() -> None:
    files = {p.stem: _load(p) for p in (CONF / "attention").glob("*.yaml")}
    assert sorted(files) == attention_names()
    for stem, node in files.items():
        assert node["_target_"] == "lit_sisr.attention.AttentionFactory" and node["name"] == stem
        options = set(node) - {"_target_", "name"}
        accepted = set() if stem == ORIGINAL else set(attention_options(ATTENTION.get(stem)))
        assert options <= accepted, f"conf/attention/{stem}.yaml: {sorted(options - accepted)} not options of it"


class OneConvNet(nn.Module):
    """A user's network: one conv and a pixel shuffle, one attention site."""

    def __init__(self, scale: int, attention=None, n_feats: int = 16) -> None:
        from lit_sisr.attention import as_factory

        super().__init__()
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.att = as_factory(attention)(n_feats, native="none", reduction=16)
        self.tail = nn.Sequential(nn.Conv2d(n_feats, 3 * scale**2, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.tail(self.att(self.head(x)))


def test_a_network_outside_the_package_is_built_by_class_path(monkeypatch) -> None:
    import torch

    monkeypatch.setitem(sys.modules, "user_net", sys.modules[__name__])
    monkeypatch.setattr(BACKBONES, "_entries", dict(BACKBONES._entries))  # registered for this test only
    net = build_backbone("one_conv", 3, "bam", class_path="user_net.OneConvNet")
    assert net(torch.rand(1, 3, 5, 5)).shape == (1, 3, 15, 15)
    assert type(net.att) is ATTENTION.get("bam") and "one_conv" in BACKBONES
    with pytest.raises(ValueError, match="class_path='user_net.Nothing'"):
        build_backbone("other", 2, class_path="user_net.Nothing")
