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

from lit_sisr.backbones import BACKBONES, build_backbone
from lit_sisr.backbones._authors import BAM_REPO, BAM_REPOSITORY, OFFICIAL, authors_formats
from lit_sisr.weights import WeightsError, load_authors_weights, load_official_weights

from refdata import SHARED, need

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
    assert fmt.covers(fx["attention"]), f"{fx['network']}'s {name!r} format does not cover attention={fx['attention']}"
    assert fmt.input_range == fx["input_range"]
    net = build_backbone(fx["network"], fx["scale"], fx["attention"], **fmt.options, **suffix_options(path)).eval()
    net.load_state_dict(fmt.convert(state), strict=True)
    with torch.no_grad():
        out = net(fx["input"] / fmt.input_range) * fmt.input_range
    expected = fx["output"]
    assert out.shape == expected.shape
    err = (out - expected).abs().max().item() / expected.abs().max().item()
    assert err <= RTOL, f"max |diff| = {err:.2e} of max|output|"


def _fixture(stem: str) -> dict:
    need(GOLDEN / f"{stem}.pt", "golden port fixtures")
    return torch.load(GOLDEN / f"{stem}.pt", weights_only=True)


def _authors_file(fx: dict, path: Path) -> Path:
    """The fixture's weights as the BAM repository's train.py saves them (DataParallel prefix)."""
    torch.save({"state_dict": {f"module.{k}": v for k, v in golden_state_dict(fx).items()}}, path)
    return path


def _relative_error(net: torch.nn.Module, fx: dict) -> float:
    with torch.no_grad():
        out = net.eval()(fx["input"] / fx["input_range"]) * fx["input_range"]
    return (out - fx["output"]).abs().max().item() / fx["output"].abs().max().item()


@pytest.mark.parametrize("stem", ["msrn-bam-x2", "msrn-original-x4", "slwsr32-original-x3", "slwsr32-bam-x2"])
def test_load_authors_weights_finds_the_format_and_builds_the_authors_network(stem: str, tmp_path: Path) -> None:
    fx = _fixture(stem)
    path = _authors_file(fx, tmp_path / "authors.pth")
    net, name = load_authors_weights(fx["network"], fx["scale"], fx["attention"], path)
    assert name == fixture_format(fx)
    assert _relative_error(net, fx) <= RTOL


def test_authors_files_that_fit_no_format_or_two_are_named(tmp_path: Path) -> None:
    fx = _fixture("edsr-original-x2")  # the baseline EDSR: both repositories use the same keys
    path = _authors_file(fx, tmp_path / "edsr.pth")
    with pytest.raises(
        WeightsError,
        match=r"edsr.pth fits the 'official' \(sanghyun-son/EDSR-PyTorch\) and 'bam' "
        r"\(dandingbudanding/BAM\) formats of edsr.*format='official' or 'bam'",
    ):
        load_authors_weights("edsr", 2, "original", path)
    with pytest.raises(
        WeightsError,
        match=r"edsr.pth does not fit edsr x3 attention=original: 2 shape mismatches.*"
        r"formats tried: 'official' \(sanghyun-son/EDSR-PyTorch\), 'bam'",
    ):
        load_authors_weights("edsr", 3, "original", path, format=None)
    with pytest.raises(WeightsError, match="no authors' format 'paper'"):
        load_authors_weights("edsr", 2, "original", path, format="paper")
    fx = _fixture("msrn-original-x2")  # the BAM format describes only the BAM classes' files
    path = _authors_file(fx, tmp_path / "msrn.pth")
    with pytest.raises(WeightsError, match="no authors' format of msrn describes files of attention=original"):
        load_authors_weights("msrn", 2, "original", path, format="bam")
    net, name = load_authors_weights("msrn", 2, "original", path)
    assert name == "official" and net.rgb_range == 255


def test_load_official_weights_refuses_a_network_built_for_another_range(tmp_path: Path) -> None:
    fx = _fixture("slwsr32-original-x2")
    path = _authors_file(fx, tmp_path / "lwsr.pth")
    with pytest.raises(
        WeightsError,
        match=r"lwsr.pth is in the 'official' \(Sudo-Biao/s-LWSR\) format of SLWSR, "
        r"which computes the authors' network only when built with rgb_range=255, "
        r"mean_shift=True; this one has rgb_range=1.0",
    ):
        load_official_weights(build_backbone("slwsr32", 2, "original"), path)
    net = load_official_weights(build_backbone("slwsr32", 2, "original", rgb_range=255), path)
    assert _relative_error(net, fx) <= RTOL
