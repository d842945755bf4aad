"""Train and test an SR network: ``python train.py [overrides]`` (see conf/train.yaml)."""
import hydra
import lit_sisr  # noqa: F401  (registers the ${lit_sisr.launch_dir:} resolver used by conf/paths)
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from lit_sisr.training import train

    metrics = train(cfg, multirun=HydraConfig.get().mode == RunMode.MULTIRUN)
    return metrics.get("val/psnr")


if __name__ == "__main__":
    main()
