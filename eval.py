"""Evaluate a checkpoint or official weights on benchmark sets: ``python eval.py ...`` (conf/eval.yaml)."""
import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from lit_sisr.evaluate_cli import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
