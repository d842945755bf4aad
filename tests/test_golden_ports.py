"""Every port computes what its authors' code computes (../shared/golden, see its README).

For each fixture: re-create the authors' weights by the golden-v1 rule from the stored key names
and shapes, convert them with the network's declared authors' format (``authors_formats``: the
original repository's or the BAM repository's), load them strictly into our network built with
that format's options, feed the stored input scaled to our [0, 1] range and compare the output,
scaled back, with the authors' (max abs difference at most 1e-5 of max|output|; float32 noise
is at most 1.1e-6). Fixture suffixes ``-official``/``-bamrepo`` pick the repository; ``-n16`` is
the paper's 16-block OISR-LF-s.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from refdata import SHARED, need

from lit_sisr.backbones import BACKBONES, build_backbone
from lit_sisr.backbones._authors import BAM_REPOSITORY, OFFICIAL, BAM_REPO, authors_formats

GOLDEN = SHARED / "golden"
FIXTURES = sorted(GOLDEN.glob("*.pt")) if GOLDEN.is_dir() else []
# Options a fixture's name asks for beyond its format's (the paper's x4 OISR-LF-s row).
SUFFIX_OPTIONS = {"n16": {"n_blocks": 16}}
RTOL = 1e-5


def golden_state_dict(fx: dict) -> dict[str, torch.Tensor]:
    """The golden-v1 rule, as written in ../shared/golden/README.md."""
    p = fx["rule_params"]
    g = torch.Generator(device="cpu")
    g.manual_seed(p["seed"])
    state = {}
    for key, shape in zip(fx["keys"], fx["shapes"]):
        if key in fx["fixed"]:
            state[key] = fx["fixed"][key]
            continue
        z = torch.randn(shape, generator=g, dtype=torch.float32)
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "weight_g":
            t = (z * p["weight_g_std"] + 1.0) * p["gain"]
        elif len(shape) >= 2:
            t = z * (p["gain"] / math.sqrt(math.prod(shape[1:])))
        elif leaf == "bias":
            t = z * p["bias_std"]
        elif leaf == "weight":
            t = z * p["prelu_std"] + p["prelu_mean"]
        else:
            raise KeyError(key)
        state[key] = t
    return state


def fixture_format(fx: dict) -> str:
    repo = fx["source"].split("@", 1)[0]
    return BAM_REPO if repo == BAM_REPOSITORY else OFFICIAL


def suffix_options(path: Path) -> dict:
    options = {}
    for part in path.stem.split("-")[3:]:
        options.update(SUFFIX_OPTIONS.get(part, {}))
    return options


def test_fixtures_present_for_every_network() -> None:
    need(GOLDEN, "golden port fixtures")
    networks = {p.name.split("-")[0] for p in FIXTURES}
    assert networks == set(BACKBONES.names()) - {"bicubic"}


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_port_reproduces_the_authors_code(path: Path, one_thread) -> None:
    fx = torch.load(path, weights_only=True)
    state = golden_state_dict(fx)
    drawn = sum(float(t.double().sum()) for k, t in state.items() if k not in fx["fixed"])
    assert math.isclose(drawn, fx["rule_checksum"]["sum"], rel_tol=1e-9), "weights re-created differently"

    formats = authors_formats(BACKBONES.get(fx["network"]))
    name = fixture_format(fx)
    assert name in formats, f"{fx['network']} declares no {name!r} format (has {sorted(formats)})"
    fmt = formats[name]
    assert fmt.input_range == fx["input_range"]
    net = build_backbone(fx["network"], fx["scale"], fx["attention"], **fmt.options, **suffix_options(path)).eval()
    net.load_state_dict(fmt.convert(state), strict=True)
    with torch.no_grad():
        out = net(fx["input"] / fmt.input_range) * fmt.input_range
    expected = fx["output"]
    assert out.shape == expected.shape
    err = (out - expected).abs().max().item() / expected.abs().max().item()
    assert err <= RTOL, f"max |diff| = {err:.2e} of max|output|"
