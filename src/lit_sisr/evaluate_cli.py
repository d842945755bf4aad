"""The Hydra task behind ``eval.py``: score a checkpoint or an official weight file."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from lit_sisr.atomic import atomic_write_text
from lit_sisr.data.testsets import named_sets
from lit_sisr.errors import ConfigError
from lit_sisr.inference import INFERENCE_KEYS, inference_from_config
from lit_sisr.outputs import format_table, summarize, write_config, write_results
from lit_sisr.protocols import PROTOCOLS, get_protocol
from lit_sisr.scoring import Stopwatch, evaluate_set
from lit_sisr.weights import LoadedNetwork, load_network

# The test-set keys of eval.yaml (conf/testsets/ at its top level: sets=[...], benchmark_dir=...).
TESTSET_KEYS = ("sets", "benchmark_dir", "hr_dir", "lr_dir")


def _network(cfg: DictConfig) -> LoadedNetwork:
    """``ckpt=`` (a lit-sisr checkpoint), ``weights=`` (an authors' file) or a parameter-free model."""
    if cfg.ckpt:
        return load_network(cfg.ckpt, kind="checkpoint")
    if cfg.weights:
        return load_network(cfg.weights, kind="authors", model=cfg.model, scale=int(cfg.scale))
    net = hydra.utils.instantiate(cfg.model)
    if any(p.numel() for p in net.parameters()):
        raise ConfigError(
            f"model={cfg.model.name} has parameters: give ckpt=<lit-sisr checkpoint> or weights=<authors' file>"
        )
    return LoadedNetwork(net, int(cfg.scale), f"{cfg.model.name}-{cfg.attention.name}")


def evaluate(cfg: DictConfig) -> list[dict]:
    if cfg.ckpt and cfg.weights:
        raise ConfigError("give either ckpt=<lit-sisr checkpoint> or weights=<official file>, not both")
    try:
        protocols = list(PROTOCOLS) if cfg.get("compare_protocols") else [get_protocol(cfg.protocol).name]
    except ValueError as err:
        raise ConfigError(str(err)) from None
    eval_config = OmegaConf.to_container(cfg, resolve=True)
    loaded = _network(cfg)
    net, scale, label = loaded.net, loaded.scale, loaded.label
    if loaded.config is not None:
        # config.yaml describes the network evaluated: the checkpoint's run, with this evaluation's settings.
        eval_config = {
            **loaded.config,
            **{
                k: eval_config[k]
                for k in ("task_name", "ckpt", "protocol", "save_images", *TESTSET_KEYS, *INFERENCE_KEYS)
                if k in eval_config
            },
        }
    sets = named_sets(scale=scale, **{k: cfg[k] for k in TESTSET_KEYS})
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    try:
        inference = inference_from_config(cfg, net)
    except ValueError as err:  # a bad option, or exact tiles of a network that cannot be tiled exactly
        raise ConfigError(str(err)) from None
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    how = f" ({inference.describe()})" if inference is not None else ""
    results: dict[str, list[dict]] = {}
    clock = Stopwatch()
    for protocol in protocols:
        # With compare_protocols, one sub-folder per protocol, each a complete result folder
        # (config.yaml names its protocol), so report.py tables them apart.
        folder = out / protocol if len(protocols) > 1 else out
        rows = []
        for spec in sets:
            save_dir = folder / "images" / spec.name if cfg.get("save_images") else None
            rows += evaluate_set(net, spec, scale, protocol, device, inference, save_dir, progress=True)
        clock.images += len(rows)
        lr_source = {r["set"]: r["lr_source"] for r in rows}
        write_config(folder, {**eval_config, "protocol": protocol, "lr_source": lr_source})
        paths = write_results(folder, rows)
        print(format_table(summarize(rows), f"{label} x{scale}{how}") + f"\n(protocol {protocol})\n")
        print(
            f"Per-image results: {paths['per_image']}"
            + (f"\nSR images: {folder / 'images'}" if cfg.get("save_images") else "")
            + "\n"
        )
        results[protocol] = rows
    if len(protocols) > 1:
        gap = protocol_gap(results)
        atomic_write_text(out / "protocol_gap.csv", _csv(gap))
        print(format_gap(gap, f"{label} x{scale}"))
    print(clock.summary())
    return results[protocols[0]]


GAP_FIELDS = (
    "set",
    "scale",
    "standard_psnr",
    "bam_paper_psnr",
    "gap_psnr",
    "standard_bicubic_psnr",
    "bam_paper_bicubic_psnr",
    "gap_bicubic_psnr",
)


def protocol_gap(results: dict[str, list[dict]]) -> list[dict]:
    """Per set: mean Y-PSNR of the model and of bicubic under each protocol, and bam_paper minus
    standard (what the protocol alone adds to a reported figure)."""
    means = {p: {s["set"]: s for s in summarize(rows)} for p, rows in results.items()}
    gap = []
    for name, std in means["standard"].items():
        bam = means["bam_paper"][name]
        gap.append(
            {
                "set": name,
                "scale": std["scale"],
                "standard_psnr": std["psnr"],
                "bam_paper_psnr": bam["psnr"],
                "gap_psnr": bam["psnr"] - std["psnr"],
                "standard_bicubic_psnr": std["bicubic_psnr"],
                "bam_paper_bicubic_psnr": bam["bicubic_psnr"],
                "gap_bicubic_psnr": bam["bicubic_psnr"] - std["bicubic_psnr"],
            }
        )
    return gap


def format_gap(gap: list[dict], label: str) -> str:
    head = f"{'set':<10}{'standard':>10}{'bam_paper':>11}{'gap dB':>8}   {'bicubic gap dB':>14}"
    lines = [f"Protocol gap of {label} (bam_paper minus standard, Y-PSNR dB):", head, "-" * len(head)]
    for g in gap:
        lines.append(
            f"{g['set']:<10}{g['standard_psnr']:>10.3f}{g['bam_paper_psnr']:>11.3f}"
            f"{g['gap_psnr']:>+8.3f}   {g['gap_bicubic_psnr']:>+14.3f}"
        )
    return "\n".join(lines)


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(GAP_FIELDS))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()
