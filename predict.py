"""Super-resolve image files with a checkpoint or authors' weights: ``python predict.py ...``
(conf/predict.yaml, docs/inference.md).

Bad inputs end with one line ``error: ...`` on stderr and exit status 2 (as eval.py).
"""

import hydra
from omegaconf import DictConfig

import lit_sisr
from lit_sisr.cli_errors import guard_run_folder, run_cli

# The ${lit_sisr.*:} resolvers of conf/ (launch_dir, run_id, eval_run_tag), before Hydra composes.
lit_sisr.register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    with guard_run_folder(None, exit_on_user_error=True):  # no run folder; one error line, no Hydra banner
        from lit_sisr.predict_cli import predict

        predict(cfg)


if __name__ == "__main__":
    run_cli(main)
