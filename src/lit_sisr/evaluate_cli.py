"""The Hydra task behind ``eval.py``: score a checkpoint or an official weight file."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from lit_sisr.backbones import build_backbone
from lit_sisr.checkpoint_io import atomic_write_text
from lit_sisr.evaluation import evaluate_benchmark
from lit_sisr.inference import INFERENCE_KEYS, inference_from_config
from lit_sisr.outputs import format_table, summarize, write_config, write_results
from lit_sisr.protocols import PROTOCOLS, get_protocol
from lit_sisr.errors import ConfigError
from lit_sisr.weights import WeightsError, load_lightning_weights, load_official_weights, read_state


def _net_from_checkpoint(path: str):
    """Rebuild the network from the run config stored in a lit-sisr checkpoint, then load it.
    Returns the network, its scale, a label and the stored run config."""
    ckpt = read_state(path)
    config = (ckpt.get("hyper_parameters") or {}).get("config") if isinstance(ckpt, dict) else None
    if not config or "model" not in config:
        raise WeightsError(f"{path}: no run config in the checkpoint; use weights=<file> with model=... scale=...")
    net = hydra.utils.instantiate(config["model"])
    load_lightning_weights(net, path)
    return net, int(config["scale"]), f"{config['model']['name']}-{config['attention']['name']}", config


def evaluate(cfg: DictConfig) -> list[dict]:
    if cfg.ckpt and cfg.weights:
        raise ConfigError("give either ckpt=<lit-sisr checkpoint> or weights=<official file>, not both")
    try:
        protocols = list(PROTOCOLS) if cfg.get("compare_protocols") else [get_protocol(cfg.protocol).name]
    except ValueError as err:
        raise ConfigError(str(err)) from None
    eval_config = OmegaConf.to_container(cfg, resolve=True)
    if cfg.ckpt:
        net, scale, label, run_config = _net_from_checkpoint(cfg.ckpt)
        # config.yaml describes the network evaluated: the checkpoint's run, with this evaluation's settings.
        eval_config = {**run_config, **{k: eval_config[k] for k in ("task_name", "ckpt", "sets", "benchmark_dir", "protocol",
                                                                     *INFERENCE_KEYS) if k in eval_config}}
    else:
        net, scale, label = hydra.utils.instantiate(cfg.model), int(cfg.scale), f"{cfg.model.name}-{cfg.attention.name}"
        if cfg.weights:
            load_official_weights(net, cfg.weights)
        elif any(p.numel() for p in net.parameters()):
            raise ConfigError(f"model={cfg.model.name} has parameters: give ckpt=<lit-sisr checkpoint> or weights=<authors' file>")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    try:
        inference = inference_from_config(cfg, net)
    except ValueError as err:  # a bad option, or exact tiles of a network that cannot be tiled exactly
        raise ConfigError(str(err)) from None
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    how = f" ({inference.describe()})" if inference is not None else ""
    results: dict[str, list[dict]] = {}
    for protocol in protocols:
        rows = _evaluate_sets(net, cfg, scale, device, inference, protocol)
        # With compare_protocols, one sub-folder per protocol, each a complete result folder
        # (config.yaml names its protocol), so report.py tables them apart.
        folder = out / protocol if len(protocols) > 1 else out
        write_config(folder, {**eval_config, "protocol": protocol})
        paths = write_results(folder, rows)
        print(format_table(summarize(rows), f"{label} x{scale}{how}") + f"\n(protocol {protocol})\n")
        print(f"Per-image results: {paths['per_image']}\n")
        results[protocol] = rows
    if len(protocols) > 1:
        gap = protocol_gap(results)
        atomic_write_text(out / "protocol_gap.csv", _csv(gap))
        print(format_gap(gap, f"{label} x{scale}"))
    return results[protocols[0]]


def _evaluate_sets(net, cfg: DictConfig, scale: int, device: str, inference, protocol: str) -> list[dict]:
    rows = []
    for set_name in cfg.sets:
        results = evaluate_benchmark(net, cfg.benchmark_dir, set_name, scale, device=device, inference=inference,
                                     protocol=protocol)
        baseline = evaluate_benchmark(build_backbone("bicubic", scale), cfg.benchmark_dir, set_name, scale,
                                      protocol=protocol)
        for r, b in zip(results, baseline):
            rows.append({"set": r.set, "scale": scale, "image": r.image, "psnr": r.psnr, "ssim": r.ssim,
                         "bicubic_psnr": b.psnr, "bicubic_ssim": b.ssim})
    return rows


GAP_FIELDS = ("set", "scale", "standard_psnr", "bam_paper_psnr", "gap_psnr",
              "standard_bicubic_psnr", "bam_paper_bicubic_psnr", "gap_bicubic_psnr")


def protocol_gap(results: dict[str, list[dict]]) -> list[dict]:
    """Per set: mean Y-PSNR of the model and of bicubic under each protocol, and bam_paper minus
    standard (what the protocol alone adds to a reported figure)."""
    means = {p: {s["set"]: s for s in summarize(rows)} for p, rows in results.items()}
    gap = []
    for name, std in means["standard"].items():
        bam = means["bam_paper"][name]
        gap.append({"set": name, "scale": std["scale"],
                    "standard_psnr": std["psnr"], "bam_paper_psnr": bam["psnr"], "gap_psnr": bam["psnr"] - std["psnr"],
                    "standard_bicubic_psnr": std["bicubic_psnr"], "bam_paper_bicubic_psnr": bam["bicubic_psnr"],
                    "gap_bicubic_psnr": bam["bicubic_psnr"] - std["bicubic_psnr"]})
    return gap


def format_gap(gap: list[dict], label: str) -> str:
    head = f"{'set':<10}{'standard':>10}{'bam_paper':>11}{'gap dB':>8}   {'bicubic gap dB':>14}"
    lines = [f"Protocol gap of {label} (bam_paper minus standard, Y-PSNR dB):", head, "-" * len(head)]
    for g in gap:
        lines.append(f"{g['set']:<10}{g['standard_psnr']:>10.3f}{g['bam_paper_psnr']:>11.3f}"
                     f"{g['gap_psnr']:>+8.3f}   {g['gap_bicubic_psnr']:>+14.3f}")
    return "\n".join(lines)


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(GAP_FIELDS))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()

