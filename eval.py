"""Evaluate a checkpoint or official weights on benchmark sets: ``python eval.py ...`` (conf/eval.yaml).

Bad inputs end with one line ``error: ...`` on stderr, exit status 2 and no new run folder
(see train.py and docs/errors.md).
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import lit_sisr
from lit_sisr.cli_errors import guard_run_folder, run_cli
from lit_sisr.config_checks import check_eval_config

# The ${lit_sisr.*:} resolvers of conf/ (launch_dir, run_id, eval_run_tag), before Hydra composes.
lit_sisr.register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    with guard_run_folder(HydraConfig.get().runtime.output_dir, exit_on_user_error=True):
        check_eval_config(cfg)
        from lit_sisr.evaluate_cli import evaluate

        evaluate(cfg)


if __name__ == "__main__":
    run_cli(main)
