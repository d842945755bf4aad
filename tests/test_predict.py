"""``predict.py``: super-resolving image files (``lit_sisr.predict_cli``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from lit_sisr.data.io import ImageError
from lit_sisr.errors import ConfigError
from lit_sisr.inference import self_ensemble
from lit_sisr.predict_cli import LUMA, predict, to_levels
from lit_sisr.resize import imresize

from helpers import lit_checkpoint, tiny_edsr

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def config(*overrides: str):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("predict", overrides=list(overrides))


def save(path: Path, array: np.ndarray, mode: str) -> Path:
    Image.fromarray(array, mode).save(path)
    return path


def levels(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path)).copy())


def test_rgb_grey_and_rgba_from_a_lit_sisr_checkpoint(tmp_path):
    net = tiny_edsr()
    ckpt = lit_checkpoint(tmp_path / "last.ckpt", net)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (10, 13, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    rgba = rng.integers(0, 256, (8, 12, 4), dtype=np.uint8)
    grey_alpha = rng.integers(0, 256, (7, 9, 2), dtype=np.uint8)
    inputs = tmp_path / "in"
    inputs.mkdir()
    save(inputs / "a.png", rgb, "RGB")
    save(inputs / "b.bmp", grey, "L")
    save(inputs / "c.tif", rgba, "RGBA")
    Image.fromarray(grey_alpha).save(inputs / "d.png")  # LA
    (inputs / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    written = predict(config(f"ckpt={ckpt}", f"input={inputs}", f"output={out}"))
    assert [p.name for p in written] == ["a_x2.png", "b_x2.png", "c_x2.png", "d_x2.png"]

    def sr(array: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return net(torch.from_numpy(array).permute(2, 0, 1).float().div(255)[None])[0].clamp(0, 1)

    assert Image.open(out / "a_x2.png").mode == "RGB"
    assert torch.equal(levels(out / "a_x2.png"), to_levels(sr(rgb)).permute(1, 2, 0))
    assert Image.open(out / "b_x2.png").mode == "L"
    luma = sum(w * c for w, c in zip(LUMA, sr(np.repeat(grey[..., None], 3, axis=2))))
    assert torch.equal(levels(out / "b_x2.png"), to_levels(luma))
    assert Image.open(out / "c_x2.png").mode == "RGBA"
    result = levels(out / "c_x2.png")
    assert torch.equal(result[..., :3], to_levels(sr(rgba[..., :3])).permute(1, 2, 0))
    alpha = imresize(torch.from_numpy(rgba[..., 3]).float()[None, None], 2.0)[0, 0]
    assert torch.equal(result[..., 3], alpha.to(torch.uint8))
    assert Image.open(out / "d_x2.png").mode == "LA"
    result = levels(out / "d_x2.png")
    luma = sum(w * c for w, c in zip(LUMA, sr(np.repeat(grey_alpha[..., :1], 3, axis=2))))
    assert torch.equal(result[..., 0], to_levels(luma))
    alpha = imresize(torch.from_numpy(grey_alpha[..., 1]).float()[None, None], 2.0)[0, 0]
    assert torch.equal(result[..., 1], alpha.to(torch.uint8))


def test_authors_weights_with_tiles_and_self_ensemble(tmp_path):
    net = tiny_edsr(rgb_range=255)  # EDSR-PyTorch's files run on [0, 255] (docs/architectures.md)
    weights = tmp_path / "edsr_official.pt"
    torch.save(net.state_dict(), weights)  # a bare state dict, as authors release them
    image = np.random.default_rng(1).integers(0, 256, (30, 26, 3), dtype=np.uint8)
    source = save(tmp_path / "photo.jpg", image, "RGB")
    lr = torch.from_numpy(np.asarray(Image.open(source)).copy()).permute(2, 0, 1).float().div(255)[None]
    out = tmp_path / "out"
    predict(
        config(
            f"ckpt={weights}",
            "model=edsr",
            "attention=none",
            "scale=2",
            "model.n_resblocks=2",
            "model.n_feats=16",
            "+model.authors_format=official",
            f"input={source}",
            f"output={out}",
            "self_ensemble=true",
            "tile=12",
        )
    )
    with torch.no_grad():
        expected = to_levels(self_ensemble(net, lr)[0]).permute(1, 2, 0).int()
    difference = (levels(out / "photo_x2.png").int() - expected).abs()
    # Tiles are exact to ~1e-6, so at most a rare rounding tie lands on the other level.
    assert difference.max() <= 1 and (difference > 0).float().mean() < 1e-3


def test_inputs_are_checked_before_any_image_is_written(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    out = tmp_path / "out"
    run = lambda *o: predict(config("model=bicubic", f"output={out}", *o))  # noqa: E731
    with pytest.raises(ConfigError, match=r"input=.*missing: no such file or folder; expected an image file"):
        run(f"input={tmp_path / 'missing'}")
    with pytest.raises(FileNotFoundError, match=r"no images \(.png, .jpg.*\) in this folder"):
        run(f"input={inputs}")
    save(inputs / "a.png", np.zeros((4, 4, 3), np.uint8), "RGB")
    (inputs / "b.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageError, match=r"b.png: unreadable or truncated image"):
        run(f"input={inputs}")
    (inputs / "b.png").unlink()
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(inputs / "c.png")
    with pytest.raises(ImageError, match=r"c.png: 16-bit or float image"):
        run(f"input={inputs}")
    (inputs / "c.png").unlink()
    save(inputs / "a.bmp", np.zeros((4, 4, 3), np.uint8), "RGB")
    with pytest.raises(ConfigError, match=r"a.bmp and a.png would both be written to .*a_x2.png"):
        run(f"input={inputs}")
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"input=null: expected an image file or a folder of images \(required\)"):
        predict(config("model=bicubic", f"output={out}"))
    with pytest.raises(ConfigError, match=r"model=edsr has parameters: give ckpt="):
        run(f"input={inputs / 'a.png'}", "model=edsr")


def test_exact_tiles_of_global_attention_are_refused(tmp_path):
    ckpt = lit_checkpoint(tmp_path / "last.ckpt", tiny_edsr("bam"), attention="bam")
    source = save(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8), "RGB")
    with pytest.raises(ConfigError, match=r"cannot be exact.*att \(bam:.*tile_exact=false"):
        predict(config(f"ckpt={ckpt}", f"input={source}", f"output={tmp_path / 'out'}", "tile=4"))


def test_bicubic_needs_no_weights_and_shows_progress(tmp_path, capsys):
    source = save(tmp_path / "a.png", np.full((6, 7, 3), 128, np.uint8), "RGB")
    predict(config("model=bicubic", "scale=3", f"input={source}", f"output={tmp_path / 'out'}"))
    assert Image.open(tmp_path / "out" / "a_x3.png").size == (21, 18)
    assert "100%" in capsys.readouterr().err  # the tqdm bar over files


# As a user runs it: .ci/run exports HYDRA_FULL_ERROR=1, which turns one-line errors into tracebacks.
USER_ENV = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "LIT_SISR_DEBUG")}


def test_command_line_reports_errors_in_one_line(tmp_path):
    missing = tmp_path / "nope"
    run = subprocess.run(
        [sys.executable, "predict.py", "model=bicubic", f"input={missing}", f"output={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=USER_ENV,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"error: input={missing}: no such file or folder; expected an image file or a folder of images"
    ]


def test_an_image_that_fails_to_decode_leaves_the_output_folder_as_it_was(tmp_path):
    """Headers pass, the second image is cut short: nothing is written, not even the first result."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    save(inputs / "a.png", np.zeros((6, 6, 3), np.uint8), "RGB")
    whole = save(tmp_path / "whole.png", np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8), "RGB")
    (inputs / "b.png").write_bytes(whole.read_bytes()[:3000])
    for output in (out, tmp_path / "new" / "deeper"):  # an existing folder, and one that does not exist yet
        if output == out:
            out.mkdir()
            (out / "a_x2.png").write_bytes(b"an earlier result")
        with pytest.raises(ImageError, match=r"b.png: unreadable or truncated image"):
            predict(config("model=bicubic", f"input={inputs}", f"output={output}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", "whole.png"]  # no staging folder left
    assert [p.name for p in out.iterdir()] == ["a_x2.png"] and (out / "a_x2.png").read_bytes() == b"an earlier result"
    (inputs / "b.png").unlink()
    predict(config("model=bicubic", f"input={inputs}", f"output={out}"))  # all good: the result replaces the old one
    assert Image.open(out / "a_x2.png").size == (12, 12)
