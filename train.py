"""Train and test an SR network: ``python train.py [overrides]`` (see conf/train.yaml).

A bad input (unknown option value, missing or unreadable data, unusable checkpoint) ends with one
line ``error: ...`` on stderr and exit status 2; options are checked before Hydra creates the run
folder (lit_sisr.config_checks), and an earlier run's files are never touched by a failed launch; a bug keeps
its traceback (``HYDRA_FULL_ERROR=1`` or ``LIT_SISR_DEBUG=1`` shows it for every error).
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import lit_sisr
from lit_sisr.cli_errors import guard_run_folder, run_cli

# The ${lit_sisr.*:} resolvers of conf/ (launch_dir, run_id, eval_run_tag), before Hydra composes.
lit_sisr.register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    with guard_run_folder(hydra_cfg.runtime.output_dir, exit_on_user_error=not multirun):
        from lit_sisr.training import train  # checks the config first (check_launch)

        metrics = train(cfg, multirun=multirun)
    return metrics.get("val/psnr")


if __name__ == "__main__":
    run_cli(main)
