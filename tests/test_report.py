"""lit_sisr.report: tables, statistics and figures rebuilt from small synthetic run folders,
checked against hand-computed numbers."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lit_sisr.report import Settings, build_report, cli
from lit_sisr.report.runs import discover
from lit_sisr.report.stats import bootstrap_ci, difference_matrix, mean_std, paired_comparison, verdict

N_BOOT = 2000

# Set5 x2, per seed, images img1..img3 (PSNR dB, SSIM).
ORIG = {1: [30.0, 32.0, 34.0], 2: [30.2, 32.2, 34.2]}  # means 32.0, 32.2 -> 32.1 ± 0.1414
BAM = {1: [30.5, 32.1, 34.6], 2: [30.7, 32.3, 34.8]}  # means 32.4, 32.6 -> 32.5 ± 0.1414
ACAM = {1: [30.1, 32.0, 34.3]}  # vs original seed 1: +0.1, 0, +0.3
# Set14: BAM - original = +0.3, -0.2, -0.04 on both seeds: mean +0.02, inside the noise.
ORIG14 = [28.0, 29.0, 30.0]
BAM14 = [28.3, 28.8, 29.96]
IMAGES = ["img1", "img2", "img3"]


def write_run(
    root: Path,
    name: str,
    model: str,
    attention: str,
    scale: int,
    seed: int | None,
    results: dict[str, list[tuple[float, float]]] | None,
    *,
    protocol: str = "standard",
    data: str = "div2k",
    epochs: int = 1000,
    options: dict | None = None,
) -> Path:
    """A run folder as train.py leaves it: config.yaml (+ test_results.csv unless failed)."""
    folder = root / name
    folder.mkdir(parents=True)
    attention_node = {"_target_": "lit_sisr.attention.AttentionFactory", "name": attention, "reduction": None}
    config = {
        "task_name": "train",
        "scale": scale,
        "seed": seed,
        "protocol": protocol,
        "model": {
            "_target_": "lit_sisr.backbones.build_backbone",
            "name": model,
            "scale": scale,
            "attention": attention_node,
            **(options or {}),
        },
        "attention": attention_node,
        "data": {"name": data},
        "trainer": {"max_epochs": epochs},
    }
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    if results is not None:
        lines = ["set,scale,image,psnr,ssim,bicubic_psnr,bicubic_ssim"]
        for set_name, values in results.items():
            for image, (psnr, ssim) in zip(IMAGES, values):
                lines.append(f"{set_name},{scale},{image},{psnr:.6f},{ssim:.6f},27.000000,0.850000")
        (folder / "test_results.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for seed in (1, 2):
        write_run(
            root,
            f"imdn-original-x2-seed{seed}",
            "imdn",
            "original",
            2,
            seed,
            {"Set5": list(zip(ORIG[seed], [0.90, 0.91, 0.92])), "Set14": [(p, 0.8) for p in ORIG14]},
        )
        write_run(
            root,
            f"imdn-bam-x2-seed{seed}",
            "imdn",
            "bam",
            2,
            seed,
            {"Set5": list(zip(BAM[seed], [0.91, 0.91, 0.93])), "Set14": [(p, 0.8) for p in BAM14]},
        )
    write_run(root, "imdn-acam-x2-seed1", "imdn", "acam", 2, 1, {"Set5": [(p, 0.9) for p in ACAM[1]]})
    write_run(root, "carn-original-x2-seed1", "carn", "original", 2, 1, None)  # crashed: no results
    write_run(root, "imdn-bam-x3-seed1", "imdn", "bam", 3, 1, {"Set5": [(34.0, 0.93)] * 3})
    # another protocol: must land in its own table, never in the standard one's numbers
    write_run(root / "other", "imdn-bam-x2-seed3", "imdn", "bam", 2, 3, {"Set5": [(10.0, 0.1)] * 3}, protocol="y-only")
    return root


@pytest.fixture(scope="module")
def report(runs_root: Path):
    return build_report(discover([runs_root]), Settings(n_boot=N_BOOT, seed=0))


def _table(report, name_start: str):
    return next(t for t in report.tables if t.name.startswith(name_start))


def _cell(table, attention: str, model: str = "imdn"):
    return next(c for c in table.cells if c.model == model and c.attention == attention)


# ---------------------------------------------------------------- statistics, by hand


def test_mean_std_over_seeds() -> None:
    mean, std = mean_std([32.0, 32.2])
    assert mean == pytest.approx(32.1) and std == pytest.approx(math.sqrt(0.02))  # ddof=1
    assert mean_std([5.0]) == (5.0, None) and mean_std([]) == (None, None)


def test_bootstrap_matches_a_hand_written_reference() -> None:
    d = np.array([[0.5, 0.2], [0.1, -0.3], [0.6, 0.4], [-0.1, 0.0]])  # 4 images x 2 seeds
    low, high = bootstrap_ci(d, n_boot=500, seed=7)
    rng = np.random.default_rng(7)  # the documented draws: images, then seeds
    rows = rng.integers(0, 4, size=(500, 4))
    cols = rng.integers(0, 2, size=(500, 2))
    means = [d[rows[b]][:, cols[b]].mean() for b in range(500)]
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=1e-12)
    # one column (or images only): the plain paired bootstrap over images
    low1, high1 = bootstrap_ci(d[:, 0], n_boot=500, seed=7)
    rows = np.random.default_rng(7).integers(0, 4, size=(500, 4))
    assert (low1, high1) == pytest.approx(tuple(np.percentile(d[:, 0][rows].mean(axis=1), [2.5, 97.5])))


def test_interval_properties_and_verdicts() -> None:
    same = {f"i{k}": {1: 30.25} for k in range(5)}
    base = {f"i{k}": {1: 30.0} for k in range(5)}
    c = paired_comparison(same, base, n_boot=300)
    assert (c.mean, c.low, c.high) == pytest.approx((0.25, 0.25, 0.25)) and c.verdict == "helps"  # degenerate
    noisy = {f"i{k}": {1: 30.0 + v} for k, v in enumerate([0.3, -0.2, 0.1, -0.25, 0.06])}
    c = paired_comparison(noisy, base, n_boot=2000)
    assert c.low <= c.mean <= c.high and c.low < 0 < c.high and c.verdict == "within noise"
    assert c.mean == pytest.approx(0.002)
    worse = {k: {1: v[1] - 1.0} for k, v in same.items()}
    assert paired_comparison(worse, base, n_boot=300).verdict == "hurts"
    assert verdict(0.1, 0.3, n_images=1) == "too few images"
    # pairing: images and seeds both cells have; each image's PSNR averaged over those seeds
    images, seeds, d = difference_matrix(
        {"a": {1: 2.0, 2: 4.0, 3: 9.0}, "b": {1: 1.0, 2: 1.0}},
        {"a": {1: 1.0, 2: 1.0}, "b": {1: 0.0, 2: 0.0}, "c": {1: 5.0}},
    )
    assert images == ["a", "b"] and seeds == [1, 2] and d.tolist() == [[1.0, 3.0], [1.0, 1.0]]


# ---------------------------------------------------------------- tables from runs


def test_table2_means_std_and_paired_difference(report) -> None:
    t2 = _table(report, "table2_standard_div2k-1000-epochs_x2")
    assert t2.sets == ["Set5", "Set14"] and t2.protocol == "standard" and t2.scale == 2
    orig, bam = _cell(t2, "original"), _cell(t2, "bam")
    assert orig.seeds == (1, 2) and bam.seeds == (1, 2)  # the y-only run (seed 3) is not here
    assert orig.sets["Set5"].psnr == pytest.approx(32.1) and orig.sets["Set5"].psnr_std == pytest.approx(0.141421356)
    assert bam.sets["Set5"].psnr == pytest.approx(32.5) and bam.sets["Set5"].psnr_std == pytest.approx(0.141421356)
    assert orig.sets["Set5"].ssim == pytest.approx(0.91) and orig.sets["Set5"].ssim_std == pytest.approx(0.0)
    assert bam.sets["Set5"].ssim == pytest.approx(0.9166667)
    # params of the run's own network (IMDN as in the paper: 694.3K with BAM), FLOPs counted
    assert bam.params / 1e3 == pytest.approx(694.3, abs=0.1) and orig.params / 1e3 == pytest.approx(694.4, abs=0.1)
    assert bam.flops > 0 and bam.paper["set5_psnr"] == 38.03

    (pair,) = t2.pairs
    set5, set14 = pair.psnr["Set5"], pair.psnr["Set14"]
    # per image, averaged over seeds: +0.5, +0.1, +0.6 -> +0.4; every resample lies in [0.1, 0.6]
    assert set5.mean == pytest.approx(0.4) and set5.seeds == (1, 2) and set5.n_images == 3
    assert 0.1 - 1e-9 <= set5.low <= 0.4 <= set5.high <= 0.6 + 1e-9 and set5.verdict == "helps"
    d5 = np.array([0.5, 0.1, 0.6])
    rows = np.random.default_rng(0).integers(0, 3, size=(N_BOOT, 3))  # equal seed columns: images decide
    assert (set5.low, set5.high) == pytest.approx(tuple(np.percentile(d5[rows].mean(axis=1), [2.5, 97.5])))
    # +0.3, -0.2, -0.04: a +0.02 dB "gain" inside the noise (P(all -0.2) = 1/27 > 2.5%)
    assert set14.mean == pytest.approx(0.02) and set14.verdict == "within noise"
    assert (set14.low, set14.high) == pytest.approx((-0.2, 0.3))
    assert pair.ssim["Set5"].mean == pytest.approx(0.02 / 3)  # +0.01, 0, +0.01
    assert pair.paper_psnr["Set5"] == pytest.approx(38.03 - 38.0)


def test_missing_cells_are_counted(report) -> None:
    t2 = _table(report, "table2_standard_div2k-1000-epochs_x2")
    missing = t2.missing()
    assert len(t2.cells) == 24  # the paper's grid at x2: 12 networks x {original, BAM}
    assert [c.label for c in missing["failed"]] == ["CARN"]
    assert len(missing["not run"]) == 21
    assert t2.missing_line() == "Cells: 2 of 24 with results; 22 missing (21 not run, 1 failed/unfinished)."
    x3 = _table(report, "table2_standard_div2k-1000-epochs_x3")
    assert x3.pairs == [] and x3.missing_line().startswith("Cells: 1 of 24 with results")
    other = _table(report, "table2_y-only")  # its own table, its own protocol
    assert _cell(other, "bam").sets["Set5"].psnr == pytest.approx(10.0)


def test_table3_ablation_against_cca(report) -> None:
    t3 = _table(report, "table3_standard_div2k-1000-epochs_x2")
    assert [c.label for c in t3.cells][:3] == ["CCA", "ACAM", "ACAM*"] and len(t3.cells) == 8
    acam = next(p for p in t3.pairs if p.a.attention == "acam")
    # only seed 1 is common: +0.1, 0, +0.3 -> +0.1333; a resample of img2 alone gives 0: not "helps"
    assert acam.psnr["Set5"].mean == pytest.approx(0.4 / 3) and acam.psnr["Set5"].seeds == (1,)
    assert acam.psnr["Set5"].low == pytest.approx(0.0) and acam.psnr["Set5"].verdict == "within noise"
    assert acam.psnr["Set14"] is None  # ACAM has no Set14 results: an empty cell


def test_cli_writes_markdown_csv_latex_and_fig7(runs_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "reports"
    assert cli.main([str(runs_root), "--out", str(out), "--bootstrap", str(N_BOOT)]) == 0
    printed = capsys.readouterr().out
    assert "BAM − original +0.400 dB" in printed and "within noise" in printed

    md = (out / "report.md").read_text()
    assert "weights div2k, 1000 epochs: over 2 paired comparisons" in md
    assert "BAM helps in 1, hurts in 0, is within noise in 1." in md
    assert "Protocol `standard`:" in md and "Protocol `y-only`:" in md
    assert "| IMDN | 2 | 694.4 / 694.4 |" in md
    assert "32.100 ± 0.141 / 0.9100 ± 0.0000 | 38.00 / 0.9605 |" in md
    assert "_+0.400 [+0.1" in md and "helps_" in md
    assert "22 missing (21 not run, 1 failed/unfinished)" in md and "Failed: CARN." in md

    with open(out / "tables" / "table2_standard_div2k-1000-epochs_x2.csv", newline="") as f:
        rows = {(r["model"], r["attention"]): r for r in csv.DictReader(f)}
    assert float(rows["imdn", "original"]["Set5_psnr"]) == pytest.approx(32.1)
    assert float(rows["imdn", "original"]["Set5_psnr_std"]) == pytest.approx(0.141421356)
    assert rows["carn", "original"]["status"] == "failed" and rows["edsr", "bam"]["status"] == "not run"
    assert rows["edsr", "bam"]["Set5_psnr"] == "" and rows["edsr", "bam"]["Set5_paper_psnr"] == "38.19"
    with open(out / "comparisons.csv", newline="") as f:
        comp = [
            r
            for r in csv.DictReader(f)
            if r["a"] == "bam" and r["set"] == "Set5" and r["table"] == "table2_standard_div2k-1000-epochs_x2"
        ]
    assert len(comp) == 1 and float(comp[0]["psnr_diff"]) == pytest.approx(0.4) and comp[0]["verdict"] == "helps"

    tex = (out / "tables" / "table2_standard_div2k-1000-epochs_x2.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\toprule" in tex and "32.100 $\\pm$ 0.141" in tex
    assert "protocol \\texttt{standard}" in tex and "`" not in tex

    for stem in ("fig7_standard_div2k-1000-epochs", "fig7_y-only-div2k-1000-epochs"):
        if stem.startswith("fig7_y"):
            assert not (out / "figures" / f"{stem}.png").exists()  # no BAM/original pair there
            continue
        png = (out / "figures" / f"{stem}.png").read_bytes()
        with Image.open(io.BytesIO(png)) as im:
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200
        assert (out / "figures" / f"{stem}.pdf").read_bytes().startswith(b"%PDF")


# ---------------------------------------------------------------- Fig. 5 crop from checkpoints


def _save_png(img: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)


def test_crop_figure_from_tiny_checkpoints(tmp_path: Path) -> None:
    from lit_sisr.backbones import build_backbone
    from lit_sisr.data.io import read_image, to_float
    from lit_sisr.metrics import psnr_y
    from lit_sisr.report.figures import Crop, crop_panels
    from lit_sisr.resize import bicubic_downscale, bicubic_upscale

    bench = tmp_path / "benchmark"
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 44), indexing="ij")
    hr = torch.stack([yy, xx, (yy + xx) / 2]) * 200 + torch.rand(3, 40, 44, generator=g) * 40
    hr = hr.round().clamp(0, 255).to(torch.uint8)
    _save_png(hr, bench / "Set5" / "HR" / "baby.png")
    _save_png(
        bicubic_downscale(hr[None].float(), 2)[0].to(torch.uint8), bench / "Set5" / "LR_bicubic" / "X2" / "babyx2.png"
    )

    runs = tmp_path / "runs"
    options = {"n_feats": 16, "n_blocks": 1}
    nets = {}
    for attention in ("original", "bam"):
        folder = write_run(
            runs, f"imdn-{attention}-x2-seed1", "imdn", attention, 2, 1, {"Set5": [(30.0, 0.9)] * 3}, options=options
        )
        torch.manual_seed(1)
        net = nets[attention] = build_backbone("imdn", 2, attention, **options).eval()
        config = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
        (folder / "checkpoints").mkdir()
        torch.save(
            {
                "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"config": config},
            },
            folder / "checkpoints" / "best-epoch0001.ckpt",
        )

    # an `eval.py ckpt=...` run is the checkpoint's network, not the eval config's default model
    ckpt = runs / "imdn-bam-x2-seed1" / "checkpoints" / "best-epoch0001.ckpt"
    evaluated = tmp_path / "evals" / "imdn-original-x2"
    evaluated.mkdir(parents=True)
    OmegaConf.save(
        OmegaConf.create(
            {
                "task_name": "eval",
                "scale": 2,
                "protocol": "standard",
                "ckpt": str(ckpt),
                "weights": None,
                "model": {"name": "imdn", "n_feats": 64},
                "attention": {"name": "original"},
            }
        ),
        evaluated / "config.yaml",
    )
    (evaluated / "test_results.csv").write_text("set,scale,image,psnr,ssim\nSet5,2,baby,31.0,0.9\n")
    (run,) = discover([tmp_path / "evals"]).runs
    assert (run.model, run.attention, run.seed, run.training) == ("imdn", "bam", 1, "div2k, 1000 epochs")
    assert dict(run.model_options) == options and run.weights == ckpt

    report = build_report(discover([runs]), Settings(n_boot=100, complexity=False))
    (t2,) = [t for t in report.tables if t.kind == "table2"]
    (pair,) = t2.pairs
    assert pair.a.label == "IMDN-BAM [n_blocks=1,n_feats=16]" and pair.a.paper is None  # not the paper's net
    crop = Crop("Set5", "baby", 6, 10, 24, 20)
    hr_full, panels = crop_panels(crop, 2, [("IMDN", pair.b.runs[0]), ("IMDN-BAM", pair.a.runs[0])], bench)
    assert [p[0] for p in panels] == ["HR", "Bicubic", "IMDN", "IMDN-BAM"]
    assert np.array_equal(panels[0][1], hr[:, 10:30, 6:30].permute(1, 2, 0).numpy())
    assert hr_full.shape == (40, 44, 3) and panels[2][1].shape == (20, 24, 3)
    lr = read_image(bench / "Set5" / "LR_bicubic" / "X2" / "babyx2.png")[None].float()  # 8-bit levels
    bicubic = (bicubic_upscale(lr, 2) / 255)[..., 10:30, 6:30]
    assert panels[1][2] == pytest.approx(float(psnr_y(bicubic, to_float(hr)[None][..., 10:30, 6:30], 0)[0]))
    with torch.no_grad():  # each network's PSNR on the crop is its own output's, from its checkpoint
        for label, attention in ((2, "original"), (3, "bam")):
            sr = nets[attention](lr / 255)[..., 10:30, 6:30]
            assert panels[label][2] == pytest.approx(float(psnr_y(sr, to_float(hr)[None][..., 10:30, 6:30], 0)[0]))

    out = tmp_path / "reports"
    code = cli.main(
        [
            str(runs),
            "--out",
            str(out),
            "--bootstrap",
            "100",
            "--no-complexity",
            "--crop",
            "Set5",
            "baby",
            "6",
            "10",
            "24",
            "20",
            "--benchmark-dir",
            str(bench),
        ]
    )
    assert code == 0
    (png,) = (out / "figures").glob("fig5_*.png")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]
    assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    assert f"figures/{png.name}" in (out / "report.md").read_text()


def test_self_ensemble_and_approximate_tiles_get_their_own_protocol(tmp_path: Path) -> None:
    from lit_sisr.report.runs import load_run

    plain = write_run(tmp_path, "plain", "imdn", "bam", 2, 1, {"Set5": [(30.0, 0.9)] * 3})
    ens = write_run(tmp_path, "ens", "imdn", "bam", 2, 1, {"Set5": [(30.1, 0.9)] * 3})
    tiles = write_run(tmp_path, "tiles", "imdn", "bam", 2, 1, {"Set5": [(29.9, 0.9)] * 3})
    exact = write_run(tmp_path, "exact", "imdn", "bam", 2, 1, {"Set5": [(30.0, 0.9)] * 3})
    for folder, extra in (
        (ens, {"self_ensemble": True}),
        (tiles, {"tile": 64, "tile_exact": False}),
        (exact, {"tile": 64, "tile_exact": True}),
    ):
        cfg = OmegaConf.merge(OmegaConf.load(folder / "config.yaml"), extra)
        OmegaConf.save(cfg, folder / "config.yaml")
    assert [load_run(f).protocol for f in (plain, ens, tiles, exact)] == [
        "standard",
        "standard + self-ensemble x8",
        "standard + approximate tiles",
        "standard",
    ]


def test_headers_print_the_interval_level_asked_for(runs_root: Path) -> None:
    from lit_sisr.report.writers import markdown_report, markdown_table

    report90 = build_report(discover([runs_root]), Settings(n_boot=200, seed=0, level=0.9, complexity=False))
    table3 = _table(report90, "table3_standard")
    text = markdown_table(table3, report90.settings) + markdown_report(report90)
    assert "Δ PSNR vs original [90% CI]" in text and "| 90% CI |" in text and "95%" not in text


def test_bam_paper_tables_describe_their_protocol(tmp_path: Path) -> None:
    write_run(tmp_path, "imdn-bam-x2-seed1", "imdn", "bam", 2, 1, {"Set5": [(34.0, 0.93)] * 3}, protocol="bam_paper")
    (table,) = build_report(discover([tmp_path]), Settings(n_boot=50, complexity=False)).tables
    assert "no description" not in table.protocol_line
    assert "PIL-bicubic resized (not cropped)" in table.protocol_line
