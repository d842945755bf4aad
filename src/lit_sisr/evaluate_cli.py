"""The Hydra task behind ``eval.py``: score a checkpoint or an official weight file."""
from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from lit_sisr.backbones import build_backbone
from lit_sisr.evaluation import evaluate_benchmark
from lit_sisr.outputs import format_table, summarize, write_config, write_results
from lit_sisr.weights import load_lightning_weights, load_official_weights, read_state


def _net_from_checkpoint(path: str):
    """Rebuild the network from the run config stored in a lit-sisr checkpoint, then load it.
    Returns the network, its scale, a label and the stored run config."""
    ckpt = read_state(path)
    config = (ckpt.get("hyper_parameters") or {}).get("config") if isinstance(ckpt, dict) else None
    if not config or "model" not in config:
        raise ValueError(f"{path}: no run config in the checkpoint; use weights=<file> with model=... scale=...")
    net = hydra.utils.instantiate(config["model"])
    load_lightning_weights(net, path)
    return net, int(config["scale"]), f"{config['model']['name']}-{config['attention']['name']}", config


def evaluate(cfg: DictConfig) -> list[dict]:
    if cfg.ckpt and cfg.weights:
        raise ValueError("give either ckpt=<lit-sisr checkpoint> or weights=<official file>, not both")
    eval_config = OmegaConf.to_container(cfg, resolve=True)
    if cfg.ckpt:
        net, scale, label, run_config = _net_from_checkpoint(cfg.ckpt)
        # config.yaml describes the network evaluated: the checkpoint's run, with this evaluation's settings.
        eval_config = {**run_config, **{k: eval_config[k] for k in ("task_name", "ckpt", "sets", "benchmark_dir", "protocol")}}
    else:
        net, scale, label = hydra.utils.instantiate(cfg.model), int(cfg.scale), f"{cfg.model.name}-{cfg.attention.name}"
        if cfg.weights:
            load_official_weights(net, cfg.weights)
        elif any(p.numel() for p in net.parameters()):
            raise ValueError(f"model {cfg.model.name!r} has parameters: give ckpt=... or weights=...")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    rows = []
    for set_name in cfg.sets:
        results = evaluate_benchmark(net, cfg.benchmark_dir, set_name, scale, device=device)
        baseline = evaluate_benchmark(build_backbone("bicubic", scale), cfg.benchmark_dir, set_name, scale)
        for r, b in zip(results, baseline):
            rows.append({"set": r.set, "scale": scale, "image": r.image, "psnr": r.psnr, "ssim": r.ssim,
                         "bicubic_psnr": b.psnr, "bicubic_ssim": b.ssim})
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    write_config(out, eval_config)
    paths = write_results(out, rows)
    print(format_table(summarize(rows), f"{label} x{scale}"))
    print(f"\nPer-image results: {paths['per_image']}")
    return rows

