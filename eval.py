"""Evaluate a checkpoint or official weights on benchmark sets: ``python eval.py ...`` (conf/eval.yaml)."""
import hydra
import lit_sisr  # noqa: F401  (registers the ${lit_sisr.launch_dir:} resolver used by conf/paths)
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from lit_sisr.evaluate_cli import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
