"""lit-sisr's Hydra launchers (``hydra/launcher=slurm|local``). Hydra accepts launcher classes only
from the ``hydra_plugins`` namespace package, which it scans at start-up: keep this import light."""
