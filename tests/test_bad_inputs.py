"""Bad inputs (docs/errors.md): each gives one line naming the file or option and what was expected.

Most cases call the library directly; three real command lines check the whole path (exit
status 2, one ``error:`` line on stderr, no traceback, no run folder left behind)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict
from PIL import Image

from lit_sisr.backbones import BACKBONES, build_backbone
from lit_sisr.cli_errors import guard_run_folder, user_error_message
from lit_sisr.config_checks import check_eval_config, check_run_config
from lit_sisr.data.datasets import ImageSet, TrainPatches, load_pair
from lit_sisr.data.io import list_images, read_image
from lit_sisr.errors import ConfigError
from lit_sisr.weights import check_fits, load_network, load_official_weights, read_state

from refdata import REPO


def compose_cfg(overrides: list[str], name: str = "train"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def message_of(call) -> str:
    """The one-line report ``train.py``/``eval.py`` would print for the error ``call`` raises."""
    with pytest.raises(Exception) as err:
        call()
    message = user_error_message(err.value)
    assert message is not None, f"{type(err.value).__name__} would be reported as a bug: {err.value}"
    assert "\n" not in message
    return message


# -- options -----------------------------------------------------------------------------------


def test_unknown_model_attention_scale_and_protocol_name_the_option_and_the_choices(monkeypatch) -> None:
    msg = message_of(lambda: compose_cfg(["model=imdnn"]))
    assert "Could not find 'model/imdnn'" in msg and "Available options in 'model': awsrn, bicubic, carn" in msg
    msg = message_of(lambda: compose_cfg(["attention=bma"]))
    assert "Could not find 'attention/bma'" in msg and "bam, bam_star" in msg

    cfg = compose_cfg(["scale=5"])
    assert (
        message_of(lambda: check_run_config(cfg)) == "scale=5 is not supported by model=imdn; expected one of: 2, 3, 4"
    )
    cfg = compose_cfg(["scale=two"])
    assert message_of(lambda: check_run_config(cfg)) == "scale=two: expected an integer, one of: 2, 3, 4"
    # a network that declares fewer scales (class attribute ``scales``)
    monkeypatch.setattr(BACKBONES.get("carn_m"), "scales", (2, 4))
    cfg = compose_cfg(["model=carn_m", "scale=3"])
    assert (
        message_of(lambda: check_run_config(cfg)) == "scale=3 is not supported by model=carn_m; expected one of: 2, 4"
    )
    with open_dict(cfg):
        cfg.model.name, cfg.scale = "imdnn", 2
    assert message_of(lambda: check_run_config(cfg)).startswith("model=imdnn is unknown; expected one of: awsrn,")
    cfg = compose_cfg(["protocol=bam"])
    assert message_of(lambda: check_run_config(cfg)).startswith("protocol=bam is unknown")
    # a wrong option value inside a network's constructor (Hydra wraps it): still one line
    cfg = compose_cfg(["+model.n_featz=3"])
    import hydra

    assert "n_featz" in message_of(lambda: hydra.utils.instantiate(cfg.model))


def test_eval_needs_exactly_one_source_of_weights() -> None:
    cfg = compose_cfg(["ckpt=a.ckpt", "weights=b.pth"], "eval")
    assert message_of(lambda: check_eval_config(cfg)).startswith("ckpt=a.ckpt and weights= both given; expected either")
    cfg = compose_cfg(["model=imdn"], "eval")
    assert message_of(lambda: check_eval_config(cfg)).startswith("model=imdn has parameters: expected ckpt=")
    check_eval_config(compose_cfg(["model=bicubic", "attention=none"], "eval"))  # nothing to load: fine


# -- data --------------------------------------------------------------------------------------


def png16(path: Path, h: int = 6, w: int = 5) -> Path:
    """A 48-bit RGB PNG (Pillow can read but not write one; it would silently drop the low bits)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + os.urandom(w * 6) for _ in range(h))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def test_missing_or_empty_data_folders(tmp_path: Path) -> None:
    msg = message_of(lambda: ImageSet("train", str(tmp_path / "DIV2K_train_HR")).files())
    assert msg.startswith(f"data folder not found: {tmp_path / 'DIV2K_train_HR'}") and "lit_sisr.data.download" in msg
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert message_of(lambda: list_images(tmp_path / "empty")).startswith("no images (.png, .jpg")


def test_image_modes_are_converted_where_lossless_and_refused_otherwise(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (6, 5), dtype=np.uint8)

    def saved(name: str, im: Image.Image) -> Path:
        im.save(tmp_path / name)
        return tmp_path / name

    # converted: grey (expanded), palette, alpha (dropped), bilevel
    out = read_image(saved("grey.png", Image.fromarray(grey)))
    assert out.shape == (3, 6, 5) and all(torch.equal(out[c], torch.from_numpy(grey)) for c in range(3))
    palette = Image.fromarray(rgb).quantize(16)
    assert torch.equal(
        read_image(saved("palette.png", palette)), torch.from_numpy(np.array(palette.convert("RGB"))).permute(2, 0, 1)
    )
    alpha = np.dstack([rgb, rng.integers(0, 256, (6, 5), dtype=np.uint8)])  # alpha dropped, colour kept
    assert torch.equal(read_image(saved("alpha.png", Image.fromarray(alpha))), torch.from_numpy(rgb).permute(2, 0, 1))
    assert set(read_image(saved("bits.png", Image.fromarray(grey > 128))).unique().tolist()) == {0, 255}

    # refused: 16-bit grey and RGB, CMYK, unreadable, truncated
    cases = {
        saved(
            "deep.png", Image.fromarray(grey.astype(np.uint16) * 257)
        ): "I;16 image (16-bit or float); expected 8-bit",
        png16(tmp_path / "deep_rgb.png"): "16-bit RGB image (16-bit or float); expected 8-bit",
        saved("cmyk.jpg", Image.fromarray(rgb).convert("CMYK")): "CMYK image; expected 8-bit RGB or grey",
    }
    (tmp_path / "text.png").write_bytes(b"not an image")
    cases[tmp_path / "text.png"] = "unreadable or truncated image"
    whole = saved("whole.png", Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    (tmp_path / "cut.png").write_bytes(whole.read_bytes()[:2000])
    cases[tmp_path / "cut.png"] = "unreadable or truncated image"
    for path, expected in cases.items():
        msg = message_of(lambda: read_image(path))
        assert msg.startswith(f"{path}: ") and expected in msg, msg


def test_pairs_whose_sizes_disagree_and_lr_smaller_than_the_patch(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (tmp_path / "hr").mkdir()
    (tmp_path / "lr").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(tmp_path / "hr" / "a.png")
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / "lr" / "ax2.png")
    msg = message_of(lambda: load_pair(tmp_path / "hr" / "a.png", str(tmp_path / "lr"), 2))
    assert msg == (
        f"{tmp_path / 'lr' / 'ax2.png'}: LR 10x10 does not match HR {tmp_path / 'hr' / 'a.png'} (40x30) "
        "at scale 2; expected LR 20x15"
    )
    msg = message_of(lambda: TrainPatches(ImageSet("t", str(tmp_path / "hr")), scale=2, patch_size=16))
    assert msg.startswith(f"{tmp_path / 'hr' / 'a.png'}: LR size (20, 15) is smaller than the training patch 16")


# -- checkpoints -------------------------------------------------------------------------------

TINY_OPTIONS = {"imdn": {"n_feats": 8, "n_blocks": 1}, "edsr": {"n_feats": 8, "n_resblocks": 1}}


def tiny(scale: int, name: str = "imdn"):
    return build_backbone(name, scale, "none", **TINY_OPTIONS[name])


def test_checkpoints_of_another_network_or_scale_and_corrupted_files(tmp_path: Path) -> None:
    ckpt = tmp_path / "imdn_x2.ckpt"
    model = {
        "_target_": "lit_sisr.backbones.build_backbone",
        "name": "imdn",
        "scale": 2,
        "attention": {"_target_": "lit_sisr.attention.AttentionFactory", "name": "none"},
        **TINY_OPTIONS["imdn"],
    }
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in tiny(2).state_dict().items()},
            "hyper_parameters": {"config": {"model": model, "attention": {"name": "none"}, "scale": 2}},
        },
        ckpt,
    )
    # resume and init_from: the checkpoint opened by the one loader, then checked against the run's network
    net = tiny(3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    msg = message_of(lambda: check_fits(net, load_network(ckpt, "checkpoint")))
    assert msg.startswith(f"{ckpt} does not fit IMDN") and "shape mismatch" in msg
    assert msg.endswith("(the checkpoint was trained as model=imdn attention=none scale=2)")
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # the check leaves it unchanged
    assert message_of(lambda: check_fits(tiny(3), load_network(ckpt))) == msg  # kind="auto" finds the run config
    official = tmp_path / "edsr.pth"
    torch.save(tiny(2, "edsr").state_dict(), official)
    msg = message_of(lambda: load_official_weights(tiny(2), official))
    assert msg.startswith(f"{official} does not fit IMDN: missing") and "another network, scale or attention" in msg

    good = ckpt.read_bytes()
    corrupted = {"truncated.ckpt": good[: len(good) // 2], "garbage.ckpt": os.urandom(4096), "empty.ckpt": b""}
    for name, data in corrupted.items():
        (tmp_path / name).write_bytes(data)
        msg = message_of(lambda: read_state(tmp_path / name))
        assert msg.startswith(f"{tmp_path / name}: not a readable PyTorch checkpoint"), msg
    assert (
        message_of(lambda: read_state(tmp_path / "nowhere.ckpt"))
        == f"weight file not found: {tmp_path / 'nowhere.ckpt'}"
    )


# -- run folders -------------------------------------------------------------------------------


def test_a_failed_launch_removes_only_the_folder_it_created(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    (fresh / ".hydra").mkdir(parents=True)
    (fresh / "train.log").touch()
    with pytest.raises(ConfigError), guard_run_folder(fresh):
        (fresh / "config.yaml").write_text("{}")
        raise ConfigError("scale=5 ...")
    assert not fresh.exists()

    earlier = tmp_path / "earlier"  # an earlier run's folder: kept whatever happens
    (earlier / "checkpoints").mkdir(parents=True)
    (earlier / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (earlier / "train.log").write_text("epoch 1\n")
    with pytest.raises(FileNotFoundError), guard_run_folder(earlier):
        raise FileNotFoundError("data folder not found: x")
    assert (earlier / "checkpoints" / "last.ckpt").is_file()

    bug = tmp_path / "bug"  # a bug keeps its folder (and log) for the report
    (bug / ".hydra").mkdir(parents=True)
    with pytest.raises(ZeroDivisionError), guard_run_folder(bug):
        1 / 0
    assert bug.is_dir()


# -- the real command lines ----------------------------------------------------------------------


def cli(script: str, *args: str, cwd: Path, **env: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "LIT_SISR_DEBUG")}
    return subprocess.Popen(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        env={**environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=600)
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in stderr and len(errors) == 1, stderr
    return process.returncode, errors[0]


def test_command_lines_print_one_error_line_exit_2_and_leave_no_run_folder(tmp_path: Path) -> None:
    corrupt = tmp_path / "IMDN_x2.pth"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    env = {
        "LIT_SISR_DATA": str(tmp_path / "nodata"),
        "LIT_SISR_CACHE": str(tmp_path / "cache"),
        "WANDB_MODE": "disabled",
    }
    # the two slow ones (torch, Lightning) run side by side
    data_error = cli("train.py", "data=div2k", "logger=none", "trainer.accelerator=cpu", cwd=tmp_path, **env)
    weights_error = cli("eval.py", f"weights={corrupt}", cwd=tmp_path, **env)
    config_error = cli("train.py", "model=imdnn", cwd=tmp_path, **env)

    code, line = finished(config_error)
    assert code == 2 and line.startswith(
        "error: In 'train': Could not find 'model/imdnn'; Available options in 'model': "
    )
    code, line = finished(data_error)
    assert code == 2 and line.startswith(
        f"error: data folder not found: {tmp_path / 'nodata' / 'DIV2K' / 'DIV2K_train_HR'}"
    )
    code, line = finished(weights_error)
    assert code == 2 and line.startswith(f"error: {corrupt}: not a readable PyTorch checkpoint")
    left = [p for p in (tmp_path / "logs").rglob("*") if p.is_file()] if (tmp_path / "logs").exists() else []
    assert left == []


@pytest.mark.parametrize(
    "options,suffix",
    [
        ([], ""),
        (["self_ensemble=true"], "-se8"),
        (["tile=64"], ""),
        (["self_ensemble=true", "tile=64", "tile_exact=false"], "-se8-tiles64approx"),
    ],
)
def test_eval_run_names_mark_options_that_change_the_figures(options: list[str], suffix: str) -> None:
    cfg = compose_cfg(["model=imdn", "scale=4", *options], "eval")
    assert cfg.run_name == f"imdn-original-x4{suffix}"
