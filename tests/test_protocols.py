"""``protocol=bam_paper``: the BAM authors' evaluation, and what it alone does to the numbers."""

from __future__ import annotations

import math

import pytest
import torch

from lit_sisr.backbones import build_backbone
from lit_sisr.protocols import bam_paper_pair, bam_paper_score, bam_paper_y, get_protocol, standard_pair
from lit_sisr.scoring import evaluate_set, mean_metrics

from helpers import GOLDEN
from refdata import BENCHMARK, benchmark_set, need


def test_bam_y_is_their_typo_d_formula_on_0_255_values() -> None:
    rgb = torch.tensor([[0.0, 0.0, 0.0], [255.0, 255.0, 255.0], [255.0, 0.0, 0.0]]).T.reshape(1, 3, 3, 1)
    y = bam_paper_y(rgb).flatten().tolist()
    assert y == pytest.approx([16.0, 16 + (64.738 + 129.057 + 25.064) * 255 / 256, 16 + 64.738 * 255 / 256])


def test_bam_paper_resizes_hr_instead_of_cropping_and_ignores_lr_files() -> None:
    torch.manual_seed(0)
    hr = torch.randint(0, 256, (3, 21, 17), dtype=torch.uint8)
    stored = torch.zeros(3, 10, 8, dtype=torch.uint8)
    lr, hr_std = standard_pair(stored, hr, 2)
    assert lr is stored and hr_std.shape == (3, 20, 16) and torch.equal(hr_std, hr[:, :20, :16])
    lr, hr_bam = bam_paper_pair(stored, hr, 2)
    assert lr.shape == (3, 10, 8) and hr_bam.shape == (3, 20, 16)
    assert not torch.equal(hr_bam, hr[:, :20, :16])  # resampled, not cropped
    assert lr.float().std() > 0  # made from HR, not the stored file
    # sides already multiples of the scale: HR untouched
    _, same = bam_paper_pair(None, hr[:, :20, :16], 2)
    assert torch.equal(same, hr[:, :20, :16])


def test_bam_paper_does_not_round_the_sr_output() -> None:
    hr = torch.full((1, 3, 20, 20), 100 / 255)
    off = hr + 0.4 / 255  # rounds back to hr under the standard protocol
    assert torch.isinf(get_protocol("standard").score(off, hr, 2)[0]).all()
    dy = 0.4 * (64.738 + 129.057 + 25.064) / 256  # their Y of a 0.4-level RGB offset
    assert bam_paper_score(off, hr, 2)[0].item() == pytest.approx(10 * math.log10(255.0**2 / dy**2), abs=1e-3)


def test_unknown_protocol_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="protocol=bam is unknown; expected one of: standard, bam_paper"):
        get_protocol("bam")


# protocol.md: the bicubic model under bam_paper (each protocol's own LR, MATLAB-exact upscaling),
# and bam_paper minus standard; the standard arm is the golden table checked in test_metrics.py.
BAM_PAPER_BICUBIC = {
    ("Set5", 2): 33.715,
    ("Set5", 3): 30.936,
    ("Set5", 4): 28.472,
    ("B100", 2): 30.986,
    ("B100", 3): 27.658,
    ("B100", 4): 26.707,
}
PROTOCOL_GAP = {
    ("Set5", 2): 0.04,
    ("Set5", 3): 0.53,
    ("Set5", 4): 0.04,
    ("B100", 2): 1.43,
    ("B100", 3): 0.46,
    ("B100", 4): 0.75,
}


@pytest.mark.parametrize("set_name,scale", list(PROTOCOL_GAP))
def test_protocol_alone_makes_the_papers_gain_pattern(set_name: str, scale: int) -> None:
    need(BENCHMARK / set_name, f"benchmark {set_name}")
    net = build_backbone("bicubic", scale)
    psnr, _ = mean_metrics(evaluate_set(net, benchmark_set(set_name, scale), scale, protocol="bam_paper"))
    assert psnr == pytest.approx(BAM_PAPER_BICUBIC[(set_name, scale)], abs=0.001)
    assert psnr - GOLDEN[(set_name, scale)][0] == pytest.approx(PROTOCOL_GAP[(set_name, scale)], abs=0.02)


def test_eval_compare_protocols_writes_both_and_the_gap(tmp_path) -> None:
    import csv

    from omegaconf import OmegaConf

    from lit_sisr.evaluate_cli import evaluate

    from helpers import compose_train

    need(BENCHMARK / "Set5", "benchmark Set5")
    cfg = compose_train(
        tmp_path,
        [
            "model=bicubic",
            "attention=none",
            "scale=3",
            "sets=[Set5]",
            f"benchmark_dir={BENCHMARK}",
            "compare_protocols=true",
        ],
        "eval",
    )
    evaluate(cfg)
    out = tmp_path / "run"
    for protocol, bicubic in (("standard", 30.403), ("bam_paper", 30.936)):
        assert OmegaConf.load(out / protocol / "config.yaml").protocol == protocol  # report.py tables them apart
        rows = list(csv.DictReader((out / protocol / "test_results.csv").open()))
        assert sum(float(r["psnr"]) for r in rows) / len(rows) == pytest.approx(bicubic, abs=0.001)
    (gap,) = csv.DictReader((out / "protocol_gap.csv").open())
    assert gap["set"] == "Set5" and float(gap["gap_psnr"]) == pytest.approx(0.53, abs=0.02)
    assert float(gap["gap_bicubic_psnr"]) == pytest.approx(float(gap["gap_psnr"]), abs=1e-9)  # the model is bicubic


def test_training_runs_validate_and_test_under_their_protocol(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LIT_SISR_CACHE", str(tmp_path / "cache"))
    from lit_sisr.scoring import score_images
    from lit_sisr.training import build

    from helpers import SHRINK, compose_train

    scored = {}
    for protocol in ("standard", "bam_paper"):
        cfg = compose_train(tmp_path / protocol, SHRINK + ["scale=3", f"protocol={protocol}", "logger=none"])
        datamodule, model, _ = build(cfg)
        datamodule.prepare_data()  # the demo photos
        datamodule.setup("test")
        assert model.protocol.name == protocol and datamodule.test_data[0].protocol == protocol
        lr, hr, _ = datamodule.test_data[0][0]
        scored[protocol] = (hr, score_images(model.net, lr[None], hr[None], 3, model.protocol)[1][:, 2])
    (hr_std, psnr_std), (hr_bam, psnr_bam) = scored["standard"], scored["bam_paper"]
    assert hr_std.shape == hr_bam.shape and not torch.equal(hr_std, hr_bam)  # resized, not cropped
    assert float(psnr_bam) != pytest.approx(float(psnr_std), abs=0.01)
