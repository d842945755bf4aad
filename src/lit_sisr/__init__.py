"""lit-sisr: single-image super-resolution with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
